/**
 * The gateway's entry point on ECS Fargate: AWS adapters (DynamoDB, Secrets Manager) configured
 * from the environment the stack sets, the worker's VPC address from the ECS task metadata, a
 * health endpoint for the load balancers (health-endpoint.ts), its metrics as embedded-metric log
 * lines every minute (and at `GET /metrics` on the control port, behind the operator token), and a
 * graceful stop that hands standard tunnels over.
 */
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { parseEnv } from '../shared/config';
import { keyCryptoSettingsFrom, startKeyCrypto } from '../shared/crypto-pool/pooled-key-crypto';
import { SecretNotFoundError } from '../shared/errors';
import { sha256Hex } from '../shared/ids';
import { createLogger } from '../shared/logger';
import { EmfReporter } from '../shared/metrics/emf';
import { OperatorMetrics } from '../shared/metrics/operator-metrics';
import { AwsSecretStore } from '../shared/secrets/aws-secret-store';
import { secretNames } from '../shared/secrets/secret-names';
import { createDynamoClients } from '../shared/store/dynamo-client';
import { gatewayDepsFromEnv } from './compose';
import { Gateway } from './gateway';
import { createHealthServer } from './health-endpoint';
import { taskAddress } from './task-metadata';

/** CloudWatch's finest standard resolution: one report a minute. */
const EMF_INTERVAL_MS = 60_000;

async function main(): Promise<void> {
  const env = parseEnv(process.env);
  const logger = createLogger(env.LOG_LEVEL);
  const {
    client,
    doc,
    health: storageHealth,
  } = createDynamoClients({ region: env.AWS_REGION, endpoint: env.DYNAMODB_ENDPOINT });
  const secrets = new AwsSecretStore(
    new SecretsManagerClient({ region: env.AWS_REGION, endpoint: env.SECRETS_MANAGER_ENDPOINT }),
    env.SECRET_PREFIX,
  );
  // Listeners bind the task's VPC address only, never a public one.
  const address =
    env.WORKER_ADDRESS ??
    (env.ECS_CONTAINER_METADATA_URI_V4
      ? await taskAddress(env.ECS_CONTAINER_METADATA_URI_V4)
      : env.TUNNEL_BIND_HOST);
  // Fails the start if the threads cannot load (a bundle without crypto-worker.mjs beside it).
  const keyCrypto = await startKeyCrypto(keyCryptoSettingsFrom(env), logger);
  const metrics = new OperatorMetrics({ processMetrics: true });
  // The API's operator token guards GET /metrics here too; none yet, none accepted.
  const adminToken = await secrets.get(secretNames.adminToken).catch((err: unknown) => {
    if (err instanceof SecretNotFoundError) return undefined;
    throw err;
  });
  const gateway = new Gateway(
    gatewayDepsFromEnv(env, {
      doc,
      health: storageHealth,
      secrets,
      logger,
      keyCrypto,
      address,
      sshHost: '0.0.0.0',
      allowPrivateSshHostsByDefault: false,
      metrics,
      ...(adminToken ? { adminTokenHash: sha256Hex(adminToken.trim()) } : {}),
    }),
  );
  await gateway.start();
  const emf = new EmfReporter(metrics, 'gateway', (line) => process.stdout.write(line));
  const emfTimer = setInterval(() => {
    emf.report().catch((err: unknown) => logger.warn('metrics report failed', { err }));
  }, EMF_INTERVAL_MS);
  emfTimer.unref();

  let healthy = true;
  // Unhealthy while stopping (not when the table is down: replacing it would drop its tunnels).
  const health = createHealthServer({
    workerId: gateway.workerId,
    isServing: () => healthy && gateway.healthy,
    listensOn: (port) => gateway.listensOn(port),
  });
  health.listen(env.HEALTH_PORT, '0.0.0.0');
  logger.info('gateway ready', { address, sshPort: gateway.sshPort, healthPort: env.HEALTH_PORT });

  const shutdown = (signal: string) => {
    if (!healthy) return;
    healthy = false;
    clearInterval(emfTimer);
    logger.info('shutting down', { signal });
    gateway
      .stop()
      .then(() => emf.report())
      .then(() => keyCrypto.close())
      .then(() => {
        health.close();
        client.destroy();
        logger.info('stopped');
        process.exit(0);
      })
      .catch((err) => {
        logger.error('shutdown failed', { err });
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `tunnelkeeper gateway: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});

/**
 * `npm run gateway`: one more gateway worker beside a running `npm start` (high availability,
 * docs/high-availability.md). It joins that stack's table (`DYNAMODB_ENDPOINT`) and reads its SSH
 * host key and control token from the same `DATA_DIR`, with its own `SSH_PORT` and `CONTROL_PORT`;
 * it listens on the ports of the tunnels the others carry and relays to them. No API, no sweeper.
 * Its `GET /metrics` takes the stack's operator token (`ADMIN_TOKEN` or `DATA_DIR/admin-token`).
 * Stops on SIGINT/SIGTERM as `npm start` does, handing its tunnels over.
 */
import { access } from 'node:fs/promises';
import { gatewayDepsFromEnv } from '../fargate/compose';
import { Gateway } from '../fargate/gateway';
import { parseEnv } from '../shared/config';
import { sha256Hex } from '../shared/ids';
import { createLogger } from '../shared/logger';
import { createDynamoClients } from '../shared/store/dynamo-client';
import { storedAdminToken } from './admin-token';
import { warnUnlessQueuedConnectionsMigrate } from './reuseport-check';
import { runtimeMismatch } from './runtime-check';
import { localSecretStore } from './secret-store';
import { stopOnSignals } from './shutdown';

const SHUTDOWN_DEADLINE_MS = 9_000;

async function main(): Promise<void> {
  const env = parseEnv(process.env);
  const logger = createLogger(env.LOG_LEVEL);
  const mismatch = runtimeMismatch(new URL('../package.json', import.meta.url).pathname);
  if (mismatch)
    logger.warn('running on another Node major than the one this repository is tested on', { ...mismatch });
  const endpoint = env.DYNAMODB_ENDPOINT;
  if (!endpoint) {
    throw new Error(
      'DYNAMODB_ENDPOINT is required: the endpoint of the running `npm start` (its log says "dynamodb local started")',
    );
  }
  const secrets = localSecretStore(env);
  try {
    await access(secrets.dir);
  } catch {
    throw new Error(
      `DATA_DIR ${env.DATA_DIR} holds no secrets/: give the DATA_DIR of the running \`npm start\` (its host key and control token)`,
    );
  }
  // The operator token of that `npm start`, for `GET /metrics` on this gateway's control endpoint.
  const adminToken = await storedAdminToken(env);
  const { client, doc, health } = createDynamoClients({ region: env.AWS_REGION, endpoint });
  const gateway = new Gateway(
    gatewayDepsFromEnv(env, {
      doc,
      health,
      secrets,
      logger,
      allowPrivateSshHostsByDefault: true,
      ...(adminToken ? { adminTokenHash: sha256Hex(adminToken) } : {}),
    }),
  );
  await warnUnlessQueuedConnectionsMigrate(logger);
  await gateway.start();
  logger.info('gateway ready', { workerId: gateway.workerId, sshPort: gateway.sshPort });

  stopOnSignals(
    logger,
    async () => {
      await gateway.stop();
      client.destroy();
    },
    SHUTDOWN_DEADLINE_MS,
  );
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`tunnelkeeper gateway: failed to start: ${message}\n`);
  process.exit(1);
});

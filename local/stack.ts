/**
 * The local all-in-one behind `npm start`: DynamoDB Local, the file secret store and the same API
 * app the Lambda serves, the gateway, and the sweeper on a worker thread (local/sweeper-thread.ts).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { buildConsole } from '../console/build';
import { gatewayDepsFromEnv } from '../fargate/compose';
import { Gateway } from '../fargate/gateway';
import { createApp } from '../lambda/api/app';
import { apiDepsFromEnv } from '../lambda/api/compose';
import { onceConsole } from '../lambda/api/console-files';
import { HttpWorkerControl } from '../lambda/api/worker-control-client';
import { issueApiKey } from '../shared/api-keys';
import type { Env } from '../shared/config';
import { ensureControlToken } from '../shared/control';
import { createKeyCrypto, keyCryptoSettingsFrom } from '../shared/crypto-pool/pooled-key-crypto';
import { availableBytes, MIN_FREE_BYTES } from '../shared/disk-space';
import { StorageUnavailableError } from '../shared/errors';
import { ensureHostKey } from '../shared/host-key';
import { sha256Hex } from '../shared/ids';
import type { Logger } from '../shared/logger';
import { OperatorMetrics } from '../shared/metrics/operator-metrics';
import { createDynamoClients } from '../shared/store/dynamo-client';
import { DynamoTunnelStore } from '../shared/store/dynamo-tunnel-store';
import { ensureTable } from '../shared/store/table';
import { adminToken } from './admin-token';
import { ALERT_WEBHOOK_SECRET_FILE, alertWebhookSecret } from './alert-webhook-secret';
import { type DynamoDbLocal, type DynamoDbLocalEvent, startDynamoDbLocal } from './dynamodb-local';
import { localSecretStore } from './secret-store';
import { startSweeperThread } from './sweeper-thread';

export const DEFAULT_WORKSPACE_ID = 'default';

export interface LocalStack {
  apiPort: number;
  sshPort: number;
  /** The composed gateway (its counts are what leak checks look at). */
  gateway: Gateway;
  /**
   * Builds the console now rather than on the first request for `/` (`npm start` does; tests
   * that never load the page do not pay for it). Logs the outcome; never throws.
   */
  buildConsoleNow(): Promise<void>;
  stop(): Promise<void>;
}

/** Credentials shown once on first start; `print` writes them where the operator sees them. */
export type PrintCredentials = (credentials: { ADMIN_TOKEN?: string; BOOTSTRAP_API_KEY?: string }) => void;

export async function startLocalStack(
  env: Env,
  logger: Logger,
  print: PrintCredentials,
): Promise<LocalStack> {
  await mkdir(env.DATA_DIR, { recursive: true, mode: 0o700 });
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err) => logger.error('stop failed', { err }));
  };
  try {
    // One pool for the API and the gateway: together they may not take more than its threads.
    const keyCrypto = createKeyCrypto(keyCryptoSettingsFrom(env), logger, { fallBackInline: true });
    stops.push(() => keyCrypto.close());
    let dynamo: DynamoDbLocal | undefined;
    let endpoint = env.DYNAMODB_ENDPOINT;
    if (!endpoint) {
      await mkdir(join(env.DATA_DIR, 'dynamodb'), { recursive: true, mode: 0o700 });
      dynamo = await startDynamoDbLocal({
        dataDir: join(env.DATA_DIR, 'dynamodb'),
        port: env.DYNAMODB_LOCAL_PORT,
        onEvent: (event) => logDynamoDbLocalEvent(logger, event),
      });
      stops.push(() => dynamo?.stop() ?? Promise.resolve());
      endpoint = dynamo.endpoint;
      logger.info('dynamodb local started', { endpoint });
    }
    const dbDir = join(env.DATA_DIR, 'dynamodb');
    const { client, doc, health } = createDynamoClients({
      region: env.AWS_REGION,
      endpoint,
      // DynamoDB Local answers a full disk with a bare InternalFailure: look at the disk.
      explainFailure: async () =>
        dynamo && ((await availableBytes(dbDir)) ?? Number.POSITIVE_INFINITY) < MIN_FREE_BYTES
          ? 'full'
          : undefined,
    });
    stops.push(async () => client.destroy());
    await ensureTable(client, env.TABLE_NAME);
    const store = new DynamoTunnelStore(doc, env.TABLE_NAME);
    const secrets = localSecretStore(env);

    const shown: Parameters<PrintCredentials>[0] = {};
    const admin = await adminToken(env);
    if (admin.isNew) shown.ADMIN_TOKEN = admin.token;
    const bootstrap = await bootstrapApiKey(env, store, logger);
    if (bootstrap) shown.BOOTSTRAP_API_KEY = bootstrap;
    if (Object.keys(shown).length > 0) print(shown);

    // One registry for the process: the gateway's, the API's and the sweeper thread's figures.
    const metrics = new OperatorMetrics({ processMetrics: true });
    const adminTokenHash = sha256Hex(admin.token);
    // Locally, bastions on private networks are the norm (a VM, a container, a Tailscale peer).
    const gateway = new Gateway({
      ...gatewayDepsFromEnv(env, {
        doc,
        health,
        secrets,
        logger,
        keyCrypto,
        allowPrivateSshHostsByDefault: true,
        metrics,
        adminTokenHash,
      }),
      // It relays for other gateways once the API below is up (Gateway.startRelaying).
      defersRelaying: true,
    });
    await gateway.start();
    stops.push(() => gateway.stop());

    const webhook = await alertWebhookSecret(env);
    if (webhook.isNew && env.ALERT_WEBHOOK_URL) {
      logger.info('alert webhook signing secret created', {
        file: join(env.DATA_DIR, ALERT_WEBHOOK_SECRET_FILE),
      });
    }
    // A thread of its own, as the Lambda has compute of its own: sweeps never hold up the gateway.
    const sweeper = startSweeperThread({
      env,
      dynamoEndpoint: endpoint,
      webhookSecret: webhook.secret,
      logger,
      metrics,
    });
    stops.push(() => sweeper.stop());

    const hostKey = await ensureHostKey(secrets);
    // Built from console/src by each process (a fraction of a second): never a stale copy.
    const consoleBuild = onceConsole(buildConsole);
    const app = createApp(
      apiDepsFromEnv(env, {
        doc,
        health,
        secrets,
        secretsCheck: () => secrets.checkSpace(),
        // DynamoDB Local reads on a full disk but cannot write: not ready.
        ...(dynamo ? { storageCheck: () => checkDiskSpace(dbDir) } : {}),
        logger,
        adminTokenHash,
        metrics,
        hostPublicKey: hostKey.publicKey,
        sshPort: gateway.sshPort,
        workerControl: new HttpWorkerControl(await ensureControlToken(secrets)),
        keyCrypto,
        onTunnelChanged: (id) => gateway.notifyTunnelChanged(id),
        clientAddress: (c) => getConnInfo(c).remote.address,
        console: consoleBuild,
        allowPrivateTargetsByDefault: true,
      }),
    );

    const server = serve({ fetch: app.fetch, hostname: env.HOST, port: env.PORT });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Keep-alive sockets would hold close() open until they time out.
          if ('closeIdleConnections' in server) server.closeIdleConnections();
        }),
    );
    const apiPort = (server.address() as AddressInfo).port;
    logger.info('api listening', { host: env.HOST, port: apiPort, url: `http://${env.HOST}:${apiPort}` });
    // Only hashes of API keys are kept: a lost one is replaced, never shown again.
    logger.info(
      'lost an API key? the operator issues a new one for its workspace, then revoke the lost one with it',
      {
        command: `curl -sS -X POST -H "Authorization: Bearer ${
          env.ADMIN_TOKEN ? '$ADMIN_TOKEN' : `$(cat ${join(env.DATA_DIR, 'admin-token')})`
        }" http://${env.HOST}:${apiPort}/v1/admin/workspaces/${DEFAULT_WORKSPACE_ID}/api-keys`,
        revoke: 'GET /v1/api-keys lists the keys, DELETE /v1/api-keys/{id} revokes one',
      },
    );
    // Loaded once the stack serves: from source (tsx) that takes a core for a second or two, which
    // start-up (DynamoDB Local's Java above all) needs. Key work asked for before waits for them.
    // Only then does this gateway take a share of the ports other gateways carry: a restarted one
    // that relayed while its workers loaded held connections until the clients gave up (CI).
    void keyCrypto.start().finally(() => gateway.startRelaying());
    const buildConsoleNow = async () => {
      const started = performance.now();
      try {
        const files = await consoleBuild();
        logger.info('console ready', {
          url: `http://${env.HOST}:${apiPort}/`,
          files: files.length,
          ms: Math.round(performance.now() - started),
        });
      } catch (err) {
        logger.error('console build failed; the next request for / tries again', { err });
      }
    };
    return { apiPort, sshPort: gateway.sshPort, gateway, buildConsoleNow, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** What the DynamoDB Local supervisor did, in the stack's log. */
function logDynamoDbLocalEvent(logger: Logger, event: DynamoDbLocalEvent): void {
  switch (event.type) {
    case 'exited':
      logger.error('dynamodb local exited; restarting it', {
        code: event.code,
        signal: event.signal,
        restartInMs: event.restartInMs,
        output: event.output.slice(-500),
      });
      break;
    case 'restart-failed':
      logger.error('dynamodb local restart failed; trying again', {
        attempt: event.attempt,
        reason: event.error,
        restartInMs: event.restartInMs,
      });
      break;
    case 'restarted':
      logger.warn('dynamodb local restarted', { attempt: event.attempt, downMs: event.downMs });
      break;
  }
}

/**
 * Makes sure the `default` workspace exists with an API key: `BOOTSTRAP_API_KEY` if set, else one
 * generated on first start (returned to be printed once; only its hash is stored). The key is given
 * to a new workspace only: one revoked since does not come back on a restart.
 */
async function bootstrapApiKey(
  env: Env,
  store: DynamoTunnelStore,
  logger: Logger,
): Promise<string | undefined> {
  const createdAt = new Date().toISOString();
  const workspace = { id: DEFAULT_WORKSPACE_ID, name: 'default', createdAt };
  if (env.BOOTSTRAP_API_KEY) {
    const { keyIsTheWorkspaces } = await store.ensureWorkspace(
      workspace,
      issueApiKey(createdAt, env.BOOTSTRAP_API_KEY).record,
    );
    if (!keyIsTheWorkspaces) {
      logger.warn(
        'BOOTSTRAP_API_KEY is not a key of the default workspace (revoked, or the workspace has others): not restored',
        {
          fix: 'use a key the workspace has, or have the operator issue one (see "lost an API key?" above)',
        },
      );
    }
    return undefined;
  }
  const marker = join(env.DATA_DIR, 'bootstrapped');
  try {
    await readFile(marker);
    return undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const { apiKey, record } = issueApiKey(createdAt);
  await store.ensureWorkspace(workspace, record);
  await writeFile(marker, `${workspace.createdAt}\n`, { mode: 0o600 });
  return apiKey;
}

/** Readiness of DynamoDB Local's disk: room for its writes. */
async function checkDiskSpace(dir: string): Promise<void> {
  const available = await availableBytes(dir);
  if (available !== undefined && available < MIN_FREE_BYTES) throw new StorageUnavailableError('full');
}

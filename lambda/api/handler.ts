/**
 * The API Lambda: builds the app once per cold start from the environment the stack sets (table,
 * secret prefix, public SSH endpoint) and hands events to Hono's adapter.
 */
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { handle } from 'hono/aws-lambda';
import { parseEnv } from '../../shared/config';
import { ensureControlToken } from '../../shared/control';
import { SecretNotFoundError } from '../../shared/errors';
import { ensureHostKey } from '../../shared/host-key';
import { newAdminToken, sha256Hex } from '../../shared/ids';
import { inlineKeyCrypto } from '../../shared/key-crypto';
import { createLogger } from '../../shared/logger';
import { AwsSecretStore } from '../../shared/secrets/aws-secret-store';
import type { SecretStore } from '../../shared/secrets/secret-store';
import { statusSettingsFrom } from '../../shared/status';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { DynamoTunnelStore } from '../../shared/store/dynamo-tunnel-store';
import { createApp } from './app';
import { HttpWorkerControl } from './worker-control-client';

/** The operator token lives in the secret store; without it admin routes refuse everyone. */
export const ADMIN_TOKEN_SECRET = 'admin/token';

type LambdaHandler = ReturnType<typeof handle>;

async function build(): Promise<LambdaHandler> {
  const env = parseEnv(process.env);
  const logger = createLogger(env.LOG_LEVEL);
  const { doc } = createDynamoClients({ region: env.AWS_REGION, endpoint: env.DYNAMODB_ENDPOINT });
  const secrets = new AwsSecretStore(new SecretsManagerClient({ region: env.AWS_REGION }), env.SECRET_PREFIX);
  const [hostKey, adminToken, controlToken] = await Promise.all([
    ensureHostKey(secrets),
    readAdminToken(secrets),
    ensureControlToken(secrets),
  ]);
  const app = createApp({
    store: new DynamoTunnelStore(doc, env.TABLE_NAME),
    secrets,
    logger,
    bindHost: env.TUNNEL_BIND_HOST,
    statusTiming: statusSettingsFrom(env),
    workerControl: new HttpWorkerControl(controlToken),
    // An instance serves one request at a time: a key derivation delays only the request that
    // asked for it, and a thread would only add its start-up to the cold start and the bundle.
    keyCrypto: inlineKeyCrypto,
    portRange: env.TUNNEL_PORT_RANGE,
    adminTokenHash: sha256Hex(adminToken ?? newAdminToken()),
    gateway: {
      sshHost: env.PUBLIC_SSH_HOST,
      sshPort: env.PUBLIC_SSH_PORT ?? 22,
      hostPublicKey: hostKey.publicKey,
      keepaliveIntervalSec: Math.max(1, Math.round(env.SSH_KEEPALIVE_INTERVAL_MS / 1000)),
    },
  });
  return handle(app);
}

async function readAdminToken(secrets: SecretStore): Promise<string | undefined> {
  try {
    return (await secrets.get(ADMIN_TOKEN_SECRET)).trim();
  } catch (err) {
    if (err instanceof SecretNotFoundError) return undefined;
    throw err;
  }
}

let built: Promise<LambdaHandler> | undefined;

export const handler: LambdaHandler = async (event, context) => {
  built ??= build().catch((err) => {
    built = undefined; // a failed cold start must not poison the warm instance
    throw err;
  });
  return (await built)(event, context);
};

/**
 * The API Lambda: builds the app once per cold start from the environment the stack sets (table,
 * secret prefix, public SSH endpoint) and hands events to Hono's adapter.
 */

import { fileURLToPath } from 'node:url';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { getConnInfo, handle } from 'hono/aws-lambda';
import { parseEnv } from '../../shared/config';
import { ensureControlToken } from '../../shared/control';
import { SecretNotFoundError } from '../../shared/errors';
import { ensureHostKey } from '../../shared/host-key';
import { newAdminToken, sha256Hex } from '../../shared/ids';
import { inlineKeyCrypto } from '../../shared/key-crypto';
import { createLogger } from '../../shared/logger';
import { AwsSecretStore } from '../../shared/secrets/aws-secret-store';
import { secretNames } from '../../shared/secrets/secret-names';
import type { SecretStore } from '../../shared/secrets/secret-store';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { createApp } from './app';
import { apiDepsFromEnv } from './compose';
import { consoleFromDirectory, onceConsole } from './console-files';
import { HttpWorkerControl } from './worker-control-client';

type LambdaHandler = ReturnType<typeof handle>;

async function build(): Promise<LambdaHandler> {
  const env = parseEnv(process.env);
  const logger = createLogger(env.LOG_LEVEL);
  const { doc, health } = createDynamoClients({ region: env.AWS_REGION, endpoint: env.DYNAMODB_ENDPOINT });
  const secrets = new AwsSecretStore(new SecretsManagerClient({ region: env.AWS_REGION }), env.SECRET_PREFIX);
  const [hostKey, adminToken, controlToken] = await Promise.all([
    ensureHostKey(secrets),
    readAdminToken(secrets),
    ensureControlToken(secrets),
  ]);
  const app = createApp(
    apiDepsFromEnv(env, {
      doc,
      health,
      secrets,
      logger,
      adminTokenHash: sha256Hex(adminToken ?? newAdminToken()),
      // An instance serves one request at a time: a key derivation delays only the request that
      // asked for it, and a thread would only add its start-up to the cold start and the bundle.
      keyCrypto: inlineKeyCrypto,
      hostPublicKey: hostKey.publicKey,
      sshPort: 22,
      workerControl: new HttpWorkerControl(controlToken),
      clientAddress: (c) => getConnInfo(c).remote.address,
      // Written beside the bundle at synth (cdk/lib/bundles.ts, CONSOLE_BUNDLE_DIR).
      console: onceConsole(consoleFromDirectory(fileURLToPath(new URL('./console/', import.meta.url)))),
    }),
  );
  return handle(app);
}

async function readAdminToken(secrets: SecretStore): Promise<string | undefined> {
  try {
    return (await secrets.get(secretNames.adminToken)).trim();
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

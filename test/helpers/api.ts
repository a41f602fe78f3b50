import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { type ApiLimits, createApp } from '../../lambda/api/app';
import { apiDepsFromEnv } from '../../lambda/api/compose';
import type { ConsoleSource } from '../../lambda/api/console-files';
import { HttpWorkerControl } from '../../lambda/api/worker-control-client';
import { issueApiKey } from '../../shared/api-keys';
import { parseEnv } from '../../shared/config';
import { newAdminToken, newApiKey, newWorkspaceId, sha256Hex } from '../../shared/ids';
import type { KeyCrypto } from '../../shared/key-crypto';
import { generateKeyPair } from '../../shared/keys';
import { createLogger } from '../../shared/logger';
import { FileSecretStore } from '../../shared/secrets/file-secret-store';
import { withDocumentedStatuses } from './documented-statuses';
import { createTestTable } from './dynamo';

export const PORT_RANGE = { from: 20000, to: 29999 };

export interface TestApiOptions {
  portRange?: { from: number; to: number };
  /** Configuration on top of the test defaults, as `npm start` would read it. */
  env?: Record<string, string>;
  /** The API's limits; the tests' defaults lift the rate limits out of the way. */
  limits?: Partial<ApiLimits>;
  /** The table's client (to count the calls the app makes). */
  doc?: DynamoDBDocumentClient;
  /** Where key derivation and RSA generation run; inline when absent. */
  keyCrypto?: KeyCrypto;
  /** The app's clock (tests that script days of history). */
  now?: () => Date;
  /** The customer console's files, served at `/` (none unless given). */
  console?: ConsoleSource;
}

/** Rate limits no test reaches unless it means to. */
const UNLIMITED = { ratePerSec: 100_000, burst: 100_000 };

/**
 * The API app over a fresh DynamoDB Local table and a file secret store, with captured logs, built
 * by the same composition as the Lambda and `npm start` (compose.ts).
 */
export async function createTestApi(options: TestApiOptions = {}) {
  const table = await createTestTable();
  const dir = await mkdtemp(join(tmpdir(), 'tk-api-'));
  const secrets = new FileSecretStore(join(dir, 'secrets'));
  const logs: string[] = [];
  const logger = createLogger('debug', (line) => logs.push(line));
  const adminToken = newAdminToken();
  const hostKey = await generateKeyPair('ed25519', 'test-gateway');
  const range = options.portRange ?? PORT_RANGE;

  /** Another app over the same table and secrets, configured differently. */
  const appWith = (over: Omit<TestApiOptions, 'portRange'> = {}) => {
    const env = parseEnv({
      TABLE_NAME: table.tableName,
      PUBLIC_SSH_HOST: 'tunnels.example.com',
      TUNNEL_BIND_HOST: '127.0.0.1',
      TUNNEL_PORT_RANGE: `${range.from}-${range.to}`,
      ...options.env,
      ...over.env,
    });
    const deps = apiDepsFromEnv(env, {
      doc: over.doc ?? table.doc,
      secrets,
      logger,
      adminTokenHash: sha256Hex(adminToken),
      hostPublicKey: hostKey.publicKey,
      sshPort: 22,
      workerControl: new HttpWorkerControl('no-gateway-in-these-tests'),
      ...(options.keyCrypto ? { keyCrypto: options.keyCrypto } : {}),
      ...(options.now ? { now: options.now } : {}),
      ...(options.console ? { console: options.console } : {}),
    });
    deps.limits = {
      ...deps.limits,
      perWorkspace: UNLIMITED,
      unauthenticatedPerSource: UNLIMITED,
      ...options.limits,
      ...over.limits,
    };
    return withDocumentedStatuses(createApp(deps));
  };
  const app = appWith();

  const newWorkspace = async (name = 'acme') => {
    const apiKey = newApiKey();
    const id = newWorkspaceId();
    await table.store.createWorkspace(
      { id, name, createdAt: new Date().toISOString() },
      issueApiKey(new Date().toISOString(), apiKey).record,
    );
    return { id, apiKey };
  };

  /** Calls the app like a client would; `body` objects are sent as JSON. */
  const call = async (method: string, path: string, apiKey: string | undefined, body?: unknown) => {
    const headers: Record<string, string> = {};
    if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await app.request(path, { method, headers, body: payload });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      text,
      // biome-ignore lint/suspicious/noExplicitAny: tests probe response fields of many shapes
      json: text && res.headers.get('Content-Type')?.includes('json') ? (JSON.parse(text) as any) : undefined,
    };
  };

  return {
    app,
    appWith,
    table,
    secrets,
    secretsDir: join(dir, 'secrets'),
    logs,
    adminToken,
    hostKey,
    newWorkspace,
    call,
    async close() {
      await table.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

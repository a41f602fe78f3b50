import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../../lambda/api/app';
import { HttpWorkerControl } from '../../lambda/api/worker-control-client';
import { newAdminToken, newApiKey, newWorkspaceId, sha256Hex } from '../../shared/ids';
import type { KeyCrypto } from '../../shared/key-crypto';
import { generateKeyPair } from '../../shared/keys';
import { createLogger } from '../../shared/logger';
import { FileSecretStore } from '../../shared/secrets/file-secret-store';
import { createTestTable } from './dynamo';

export const PORT_RANGE = { from: 20000, to: 29999 };

/** The API app over a fresh DynamoDB Local table and a file secret store, with captured logs. */
export async function createTestApi(
  options: { portRange?: { from: number; to: number }; keyCrypto?: KeyCrypto } = {},
) {
  const table = await createTestTable();
  const dir = await mkdtemp(join(tmpdir(), 'tk-api-'));
  const secrets = new FileSecretStore(join(dir, 'secrets'));
  const logs: string[] = [];
  const logger = createLogger('debug', (line) => logs.push(line));
  const adminToken = newAdminToken();
  const hostKey = await generateKeyPair('ed25519', 'test-gateway');
  const app = createApp({
    store: table.store,
    secrets,
    logger,
    bindHost: '127.0.0.1',
    portRange: options.portRange ?? PORT_RANGE,
    adminTokenHash: sha256Hex(adminToken),
    gateway: {
      sshHost: 'tunnels.example.com',
      sshPort: 22,
      hostPublicKey: hostKey.publicKey,
      keepaliveIntervalSec: 15,
    },
    rateLimit: { ratePerSec: 10_000, burst: 10_000 },
    workerControl: new HttpWorkerControl('no-gateway-in-these-tests'),
    ...(options.keyCrypto ? { keyCrypto: options.keyCrypto } : {}),
  });

  const newWorkspace = async (name = 'acme') => {
    const apiKey = newApiKey();
    const id = newWorkspaceId();
    await table.store.createWorkspace({ id, name, createdAt: new Date().toISOString() }, sha256Hex(apiKey));
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
      json: text ? (JSON.parse(text) as any) : undefined,
    };
  };

  return {
    app,
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

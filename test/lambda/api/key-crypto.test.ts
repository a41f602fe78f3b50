/**
 * The API with the key crypto pool of `npm start` (real worker processes, DynamoDB Local, file secrets):
 * passphrase keys and RSA keys are worked on the pool with the same answers as inline, and a full
 * pool answers the contract's 503 `unavailable` with `Retry-After`, creating nothing.
 */
import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KeyCryptoService, startKeyCrypto } from '../../../shared/crypto-pool/pooled-key-crypto';
import { MAX_BCRYPT_ROUNDS } from '../../../shared/keys';
import { silentLogger } from '../../../shared/logger';
import { secretNames } from '../../../shared/secrets/secret-names';
import { TunnelSecretSchema } from '../../../shared/tunnel';
import { createTestApi } from '../../helpers/api';
import { requireTools } from '../../helpers/customer';
import { keygen } from '../../helpers/keygen';
import { waitFor } from '../../helpers/wait-for';

const PASSPHRASE = 'open sesame';
const standardBody = {
  type: 'standard',
  name: 'orders',
  ssh: { host: 'bastion.example.com', user: 'tunnel' },
  service: { host: '10.1.2.3', port: 5432 },
};

describe('the API on the key crypto pool', () => {
  let api: Awaited<ReturnType<typeof createTestApi>>;
  let crypto: KeyCryptoService;
  let ws: { id: string; apiKey: string };
  let slowKey: { privateKey: string; publicKey: string };
  let otherKey: { privateKey: string; publicKey: string };

  beforeAll(async () => {
    requireTools('ssh-keygen');
    // One worker and no queue: while it derives a key, any other heavy request is refused.
    [crypto, slowKey, otherKey] = await Promise.all([
      startKeyCrypto({ workers: 1, maxQueue: 0, taskTimeoutMs: 60_000 }, silentLogger),
      keygen({ type: 'ed25519', passphrase: PASSPHRASE, rounds: MAX_BCRYPT_ROUNDS }),
      keygen({ type: 'ecdsa', bits: 256, passphrase: PASSPHRASE, rounds: 8 }),
    ]);
    api = await createTestApi({ keyCrypto: crypto });
    ws = await api.newWorkspace();
  }, 120_000);

  afterAll(async () => {
    await crypto?.close();
    await api?.close();
  });

  const withKey = (key: { privateKey: string }, passphrase: string) => ({
    ...standardBody,
    auth: { method: 'private_key', privateKey: key.privateKey, passphrase },
  });

  it('a full pool answers 503 unavailable with Retry-After, and creates nothing', async () => {
    const before = crypto.stats?.completed ?? 0;
    // Secret files, the store's own master key aside.
    const secretFiles = async () =>
      (await readdir(api.secretsDir).catch(() => [])).filter((f) => f !== 'master.key').length;
    const filesBefore = await secretFiles();
    const first = api.call('POST', '/v1/tunnels', ws.apiKey, withKey(slowKey, PASSPHRASE));
    // The first create's derivation holds the only worker.
    await waitFor(() => crypto.stats?.busy === 1, 10_000);
    const refused = await api.call('POST', '/v1/tunnels', ws.apiKey, withKey(otherKey, PASSPHRASE));
    expect(refused.status).toBe(503);
    expect(refused.json).toEqual({ error: { code: 'unavailable', message: expect.any(String) } });
    expect(Number(refused.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
    expect(refused.text).not.toContain(PASSPHRASE);
    expect(refused.text).not.toContain('PRIVATE KEY');
    const rsa = await api.call('POST', '/v1/tunnels', ws.apiKey, {
      ...standardBody,
      auth: { method: 'generated', keyType: 'rsa' },
    });
    expect(rsa.status).toBe(503);

    const created = await first;
    expect(created.status).toBe(201);
    expect(created.json.publicKey).toBe(slowKey.publicKey.split(' ').slice(0, 2).join(' '));
    // Only the first create left a tunnel and a secret behind.
    const list = await api.call('GET', '/v1/tunnels', ws.apiKey);
    expect(list.json.items.map((t: { id: string }) => t.id)).toEqual([created.json.id]);
    expect(await secretFiles()).toBe(filesBefore + 1);
    expect(crypto.stats?.completed).toBe(before + 1);
  }, 60_000);

  it('a wrong passphrase is the same 422 as inline, from the worker', async () => {
    const res = await api.call('POST', '/v1/tunnels', ws.apiKey, withKey(otherKey, 'not it'));
    expect(res.status).toBe(422);
    expect(res.json.error.details).toEqual([
      { path: 'auth.passphrase', message: 'is wrong: the private key could not be decrypted with it' },
    ]);
  });

  it('rotating an RSA tunnel generates its new RSA-4096 key in the worker', async () => {
    const t = await api.call('POST', '/v1/tunnels', ws.apiKey, {
      ...standardBody,
      auth: { method: 'generated', keyType: 'rsa' },
    });
    expect(t.status).toBe(201);
    const before = crypto.stats?.completed ?? 0;
    const res = await api.call('POST', `/v1/tunnels/${t.json.id}/rotate-key`, ws.apiKey);
    expect(res.status).toBe(200);
    expect(res.json.publicKey).toMatch(/^ssh-rsa /);
    expect(res.json.publicKey).not.toBe(t.json.publicKey);
    expect(crypto.stats?.completed).toBe(before + 1);
    const secret = TunnelSecretSchema.parse(JSON.parse(await api.secrets.get(secretNames.tunnel(t.json.id))));
    expect(secret.keys.map((k) => k.publicKey)).toEqual([res.json.publicKey, t.json.publicKey]);
  }, 120_000);
});

/**
 * Standard tunnels' credentials as the gateway reads them, on the real file secret store: versioned
 * by the record's key fingerprint (a rotation misses at once), a value whose newest key is not the
 * record's is used but not kept, a malformed one fails without quoting it, the gateway's own write
 * (retiring the old key) is served from memory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TunnelSecrets } from '../../../fargate/standard/tunnel-secrets';
import { SecretStoreError } from '../../../shared/errors';
import { createLogger } from '../../../shared/logger';
import { FileSecretStore } from '../../../shared/secrets/file-secret-store';
import { SecretCache } from '../../../shared/secrets/secret-cache';
import type { SecretStore } from '../../../shared/secrets/secret-store';
import type { TunnelRecord, TunnelSecret } from '../../../shared/tunnel';

/** The real file store, its reads counted per name. */
class CountingStore implements SecretStore {
  readonly reads = new Map<string, number>();
  constructor(private readonly inner: SecretStore) {}
  put(name: string, value: string) {
    return this.inner.put(name, value);
  }
  create(name: string, value: string) {
    return this.inner.create(name, value);
  }
  get(name: string) {
    this.reads.set(name, (this.reads.get(name) ?? 0) + 1);
    return this.inner.get(name);
  }
  delete(name: string) {
    return this.inner.delete(name);
  }
}

const key = (n: string) => ({
  privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-${n}\n-----END OPENSSH PRIVATE KEY-----\n`,
  publicKey: `ssh-ed25519 AAAA${n}`,
  fingerprint: `SHA256:${n}`,
});

const record = (id: string, fingerprint: string): TunnelRecord => ({
  id,
  workspaceId: 'ws_test',
  name: 'orders',
  type: 'standard',
  enabled: true,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  version: 1,
  port: 20001,
  service: { host: '10.0.0.5', port: 5432 },
  ssh: { host: 'bastion.example.com', port: 22, user: 'tunnel' },
  publicKey: `ssh-ed25519 AAAA${fingerprint}`,
  publicKeyFingerprint: fingerprint,
});

describe('TunnelSecrets', () => {
  let dir: string;
  let store: CountingStore;
  let secrets: TunnelSecrets;
  const reads = (id: string) => store.reads.get(`tunnels/${id}`) ?? 0;
  const write = (id: string, secret: TunnelSecret | string) =>
    store.put(`tunnels/${id}`, typeof secret === 'string' ? secret : JSON.stringify(secret));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tk-tunnel-secrets-'));
    store = new CountingStore(new FileSecretStore(dir));
    secrets = new TunnelSecrets(new SecretCache(store, { ttlMs: 300_000, maxEntries: 100 }));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads a tunnel once per key fingerprint of its record', async () => {
    await write('tun_a', { keys: [key('a1')] });
    for (let i = 0; i < 5; i++) {
      expect((await secrets.read(record('tun_a', 'SHA256:a1'))).secret.keys[0]?.fingerprint).toBe(
        'SHA256:a1',
      );
    }
    expect(reads('tun_a')).toBe(1);
    // A rotation: the secret with its new key first, then the record.
    await write('tun_a', { keys: [key('a2'), key('a1')] });
    const rotated = await secrets.read(record('tun_a', 'SHA256:a2'));
    expect(rotated.secret.keys.map((k) => k.fingerprint)).toEqual(['SHA256:a2', 'SHA256:a1']);
    await secrets.read(record('tun_a', 'SHA256:a2'));
    expect(reads('tun_a')).toBe(2);
  });

  it('uses but does not keep a value whose newest key is not the one the record names', async () => {
    // The store behind the record (or ahead of it): each read goes to the store until they agree.
    await write('tun_b', { keys: [key('b1')] });
    await secrets.read(record('tun_b', 'SHA256:b2'));
    const behind = await secrets.read(record('tun_b', 'SHA256:b2'));
    expect(behind.secret.keys[0]?.fingerprint).toBe('SHA256:b1');
    expect(reads('tun_b')).toBe(2);
    await write('tun_b', { keys: [key('b2'), key('b1')] });
    await secrets.read(record('tun_b', 'SHA256:b2'));
    await secrets.read(record('tun_b', 'SHA256:b2'));
    expect(reads('tun_b')).toBe(3);
  });

  it('serves its own write (the old key retired) from memory', async () => {
    await write('tun_c', { keys: [key('c2'), key('c1')] });
    await secrets.read(record('tun_c', 'SHA256:c2'));
    await secrets.replace('tun_c', { keys: [key('c2')] });
    const after = await secrets.read(record('tun_c', 'SHA256:c2'));
    expect(after.secret.keys.map((k) => k.fingerprint)).toEqual(['SHA256:c2']);
    expect(reads('tun_c')).toBe(1);
    expect(JSON.parse(await store.get('tunnels/tun_c'))).toEqual({ keys: [key('c2')] });
  });

  it('rechecks refused credentials from memory, once, and gives the newer ones', async () => {
    const logger = createLogger('error', () => {});
    await write('tun_d', { keys: [key('d1')] });
    await secrets.read(record('tun_d', 'SHA256:d1'));
    const cached = await secrets.read(record('tun_d', 'SHA256:d1'));
    expect(await secrets.recheck(record('tun_d', 'SHA256:d1'), cached, logger)).toBeUndefined();
    expect(reads('tun_d')).toBe(2);
    // Changed behind a record that has not moved (an operator's edit, a store ahead of the record).
    await write('tun_d', { keys: [key('d1')], password: 'changed' });
    const confirmed = await secrets.read(record('tun_d', 'SHA256:d1'));
    expect(await secrets.recheck(record('tun_d', 'SHA256:d1'), confirmed, logger)).toBeUndefined();
    expect(reads('tun_d')).toBe(2);
    secrets.forget('tun_d');
    await secrets.read(record('tun_d', 'SHA256:d1'));
    await write('tun_d', { keys: [key('d1')], password: 'changed again' });
    const stale = await secrets.read(record('tun_d', 'SHA256:d1'));
    const fresher = await secrets.recheck(record('tun_d', 'SHA256:d1'), stale, logger);
    expect(fresher?.secret.password).toBe('changed again');
    expect(reads('tun_d')).toBe(4);
  });

  it('refuses a malformed secret naming the fields, never quoting it, and does not keep it', async () => {
    await write('tun_e', 'hunter2-not-json');
    const err = await secrets.read(record('tun_e', 'SHA256:e1')).then(
      () => expect.unreachable('a malformed secret was accepted'),
      (e: unknown) => e,
    );
    if (!(err instanceof SecretStoreError)) throw err;
    expect(err.message).toBe("secret tunnels/tun_e is not a tunnel's credentials: (the value)");
    expect(err.cause).toBeUndefined();

    await write('tun_e', JSON.stringify({ keys: [{ ...key('e1'), privateKey: 42 }] }));
    await expect(secrets.read(record('tun_e', 'SHA256:e1'))).rejects.toThrow(
      "secret tunnels/tun_e is not a tunnel's credentials: keys.0.privateKey",
    );
    await write('tun_e', { keys: [key('e1')] });
    expect((await secrets.read(record('tun_e', 'SHA256:e1'))).secret.keys).toHaveLength(1);
    expect(reads('tun_e')).toBe(3);
  });
});

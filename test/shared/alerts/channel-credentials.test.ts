/**
 * The alert channel key in the secret store (a real file store in a temp dir): created by the API's
 * sealer on first use and only read by the sweeper's, read once per process however many channels
 * open at once, and legacy items with clear credentials read as they are.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChannelCredentialSealer } from '../../../shared/alerts/channel-credentials';
import type { AlertChannelRecord } from '../../../shared/alerts/channel-schemas';
import { SecretNotFoundError, SecretStoreError } from '../../../shared/errors';
import { FileSecretStore } from '../../../shared/secrets/file-secret-store';
import { secretNames } from '../../../shared/secrets/secret-names';
import type { SecretStore } from '../../../shared/secrets/secret-store';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const BASE: AlertChannelRecord = {
  id: 'ach_aaaaaaaaaaaaaaaa',
  workspaceId: 'ws_acme',
  type: 'webhook',
  name: 'hook',
  createdAt: '2026-01-01T00:00:00.000Z',
  url: 'https://hooks.example.com/t',
};
const FOR = { workspaceId: BASE.workspaceId, channelId: BASE.id };

/** A secret store that counts its reads and creates (the real one underneath). */
function counting(store: SecretStore) {
  const calls = { get: 0, create: 0 };
  const counted: SecretStore = {
    put: (name, value) => store.put(name, value),
    create: (name, value) => {
      calls.create++;
      return store.create(name, value);
    },
    get: (name) => {
      calls.get++;
      return store.get(name);
    },
    delete: (name) => store.delete(name),
  };
  return { store: counted, calls };
}

describe('alert channel credential sealer', () => {
  let dir: string;
  let files: FileSecretStore;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tk-channel-key-'));
    files = new FileSecretStore(join(dir, 'secrets'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("the API's creates the key on first use; the sweeper's, over the same store, opens what it sealed", async () => {
    const api = new ChannelCredentialSealer(files, 'create');
    const sealed = await api.seal(FOR, { secret: SECRET });
    expect(await files.get(secretNames.alertChannelKey)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const sweeper = new ChannelCredentialSealer(files, 'read');
    expect(await sweeper.open({ ...BASE, sealedCredentials: sealed })).toEqual({ secret: SECRET });
    // Another API process starting later finds the key rather than making one.
    expect(
      await new ChannelCredentialSealer(files, 'create').open({ ...BASE, sealedCredentials: sealed }),
    ).toEqual({ secret: SECRET });
  });

  it('two API processes starting at once end up with one key', async () => {
    const [a, b] = [
      new ChannelCredentialSealer(files, 'create'),
      new ChannelCredentialSealer(files, 'create'),
    ];
    const [fromA, fromB] = await Promise.all([
      a.seal(FOR, { secret: SECRET }),
      b.seal(FOR, { secret: SECRET }),
    ]);
    expect(await b.open({ ...BASE, sealedCredentials: fromA })).toEqual({ secret: SECRET });
    expect(await a.open({ ...BASE, sealedCredentials: fromB })).toEqual({ secret: SECRET });
  });

  it('reads the key once per process, however many channels open at once', async () => {
    const sealed = await new ChannelCredentialSealer(files, 'create').seal(FOR, { secret: SECRET });
    const { store, calls } = counting(files);
    const sweeper = new ChannelCredentialSealer(store, 'read');
    const opened = await Promise.all(
      Array.from({ length: 20 }, () => sweeper.open({ ...BASE, sealedCredentials: sealed })),
    );
    expect(opened.every((c) => c.secret === SECRET)).toBe(true);
    await sweeper.open({ ...BASE, sealedCredentials: sealed });
    expect(calls).toEqual({ get: 1, create: 0 });
  });

  it("the sweeper's never creates the key; a failed read is not kept, so it works once the key exists", async () => {
    const { store, calls } = counting(files);
    const sweeper = new ChannelCredentialSealer(store, 'read');
    const sealedElsewhere = { ...BASE, sealedCredentials: 'v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA' };
    await expect(sweeper.open(sealedElsewhere)).rejects.toBeInstanceOf(SecretNotFoundError);
    await expect(files.get(secretNames.alertChannelKey)).rejects.toBeInstanceOf(SecretNotFoundError);
    expect(calls.create).toBe(0);
    const sealed = await new ChannelCredentialSealer(files, 'create').seal(FOR, { secret: SECRET });
    expect(await sweeper.open({ ...BASE, sealedCredentials: sealed })).toEqual({ secret: SECRET });
    expect(calls).toEqual({ get: 2, create: 0 });
  });

  it('refuses a stored key that is not one, naming the secret and not its value', async () => {
    await files.put(secretNames.alertChannelKey, 'not-a-key');
    const api = new ChannelCredentialSealer(files, 'create');
    const err = await api.seal(FOR, { secret: SECRET }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretStoreError);
    expect((err as Error).message).toContain('alerts/channel-key');
    expect((err as Error).message).not.toContain('not-a-key');
  });

  it.each<[string, AlertChannelRecord, object]>([
    ['a webhook secret', { ...BASE, secret: SECRET }, { secret: SECRET }],
    [
      'a Slack URL',
      { ...BASE, type: 'slack', url: 'https://hooks.slack.com/services/T/B/x' },
      { url: 'https://hooks.slack.com/services/T/B/x' },
    ],
    [
      'a routing key',
      { ...BASE, type: 'pagerduty', url: undefined, routingKey: 'R0123456789abcdef0123456789abcde' },
      { routingKey: 'R0123456789abcdef0123456789abcde' },
    ],
  ])(
    'reads an item written before sealing (%s in clear) as it is, without the key',
    async (_, legacy, expected) => {
      const { store, calls } = counting(files);
      expect(await new ChannelCredentialSealer(store, 'read').open(legacy)).toEqual(expected);
      expect(calls).toEqual({ get: 0, create: 0 });
    },
  );
});

/**
 * The secret cache in front of the secret store: values kept per version for the TTL, at most
 * `maxEntries` names (least recently used dropped), one store read for concurrent reads of a name,
 * failures never kept, a refused value read again once. Its logic on an in-memory store and a fake
 * clock; then on the Secrets Manager adapter (aws-sdk-client-mock: the one AWS service with no local
 * emulator), counting `GetSecretValue` calls.
 */
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  SecretNotFoundError,
  SecretStoreUnavailableError,
  SecretThrottledError,
} from '../../../shared/errors';
import { AwsSecretStore } from '../../../shared/secrets/aws-secret-store';
import { SecretCache, type SecretReadResult } from '../../../shared/secrets/secret-cache';
import type { SecretStore } from '../../../shared/secrets/secret-store';

const TTL_MS = 300_000;
const NAME = 'tunnels/tun_a';

/** A SecretStore in memory that counts reads and can hold them until released. */
class MemoryStore implements SecretStore {
  readonly values = new Map<string, string>();
  readonly reads: string[] = [];
  /** Set: every read waits for `release()`; `failWith`: every read rejects. */
  private gate: { promise: Promise<void>; open: () => void } | undefined;
  failWith: Error | undefined;

  hold(): void {
    let open = () => {};
    const promise = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.gate = { promise, open };
  }

  release(): void {
    this.gate?.open();
    this.gate = undefined;
  }

  async put(name: string, value: string): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.values.set(name, value);
  }

  async create(name: string, value: string): Promise<boolean> {
    if (this.values.has(name)) return false;
    this.values.set(name, value);
    return true;
  }

  /** Answers with what it held when asked; a hold only delays the answer. */
  async get(name: string): Promise<string> {
    this.reads.push(name);
    const failure = this.failWith;
    const value = this.values.get(name);
    await this.gate?.promise;
    if (failure) throw failure;
    if (value === undefined) throw new SecretNotFoundError(name);
    return value;
  }

  async delete(name: string): Promise<void> {
    this.values.delete(name);
  }
}

function setup(settings: { ttlMs?: number; maxEntries?: number } = {}) {
  const store = new MemoryStore();
  const clock = { now: 1_000_000 };
  const counts: Record<SecretReadResult, number> = { hit: 0, miss: 0 };
  const cache = new SecretCache(
    store,
    { ttlMs: settings.ttlMs ?? TTL_MS, maxEntries: settings.maxEntries ?? 100 },
    { now: () => clock.now, counter: { secretRead: (result) => counts[result]++ } },
  );
  return { store, clock, counts, cache };
}

describe('SecretCache', () => {
  it('serves a version from memory within the TTL, and reads again after it', async () => {
    const { store, clock, counts, cache } = setup();
    store.values.set(NAME, 'v1-value');
    expect(await cache.read(NAME, 'fp1')).toEqual({ value: 'v1-value', mayBeStale: false });
    for (let i = 0; i < 5; i++) {
      clock.now += TTL_MS / 10;
      expect(await cache.read(NAME, 'fp1')).toEqual({ value: 'v1-value', mayBeStale: true });
    }
    expect(store.reads).toEqual([NAME]);
    clock.now += TTL_MS / 2; // 1.0 TTL since the store read began
    store.values.set(NAME, 'changed-without-a-version');
    expect((await cache.read(NAME, 'fp1')).value).toBe('changed-without-a-version');
    expect(store.reads).toEqual([NAME, NAME]);
    expect(counts).toEqual({ hit: 5, miss: 2 });
  });

  it('misses at once on another version, and keeps only the latest', async () => {
    const { store, counts, cache } = setup();
    store.values.set(NAME, 'old');
    expect((await cache.read(NAME, 'fp-old')).value).toBe('old');
    store.values.set(NAME, 'new');
    expect((await cache.read(NAME, 'fp-new')).value).toBe('new');
    expect((await cache.read(NAME, 'fp-new')).value).toBe('new');
    // A caller with an older record reads the store again rather than get another version's value.
    expect((await cache.read(NAME, 'fp-old')).value).toBe('new');
    expect(store.reads).toHaveLength(3);
    expect(counts).toEqual({ hit: 1, miss: 3 });
    expect(cache.size).toBe(1);
  });

  it('holds at most maxEntries names, dropping the least recently used', async () => {
    const { store, cache } = setup({ maxEntries: 2 });
    for (const name of ['a', 'b', 'c']) store.values.set(name, `value-${name}`);
    await cache.read('a', '1');
    await cache.read('b', '1');
    await cache.read('a', '1'); // a is now the most recently used
    await cache.read('c', '1'); // drops b
    expect(cache.size).toBe(2);
    expect(store.reads).toEqual(['a', 'b', 'c']);
    await cache.read('a', '1');
    await cache.read('c', '1');
    expect(store.reads).toEqual(['a', 'b', 'c']);
    await cache.read('b', '1');
    expect(store.reads).toEqual(['a', 'b', 'c', 'b']);
    expect(cache.size).toBe(2);
  });

  it('makes one store read for concurrent reads of a name (a gateway restart)', async () => {
    const { store, counts, cache } = setup();
    store.values.set(NAME, 'value');
    store.hold();
    const reads = Array.from({ length: 20 }, () => cache.read(NAME, 'fp1'));
    store.release();
    const values = await Promise.all(reads);
    expect(values.every((r) => r.value === 'value' && !r.mayBeStale)).toBe(true);
    expect(store.reads).toEqual([NAME]);
    expect(counts).toEqual({ hit: 19, miss: 1 });
  });

  it('never keeps a failure: concurrent readers share it, the next read tries the store again', async () => {
    const { store, cache } = setup();
    store.values.set(NAME, 'value');
    store.failWith = new SecretStoreUnavailableError(NAME, 'unreachable');
    store.hold();
    const reads = Array.from({ length: 3 }, () => cache.read(NAME, 'fp1'));
    store.release();
    for (const read of reads) await expect(read).rejects.toBeInstanceOf(SecretStoreUnavailableError);
    expect(store.reads).toEqual([NAME]);
    store.failWith = undefined;
    expect((await cache.read(NAME, 'fp1')).value).toBe('value');
    expect(store.reads).toEqual([NAME, NAME]);
  });

  it('keeps no trace of a secret not found (a tunnel deleted, then read again)', async () => {
    const { store, cache } = setup();
    await expect(cache.read(NAME, 'fp1')).rejects.toBeInstanceOf(SecretNotFoundError);
    await expect(cache.read(NAME, 'fp1')).rejects.toBeInstanceOf(SecretNotFoundError);
    expect(store.reads).toEqual([NAME, NAME]);
    expect(cache.size).toBe(0);
    store.values.set(NAME, 'created');
    expect((await cache.read(NAME, 'fp1')).value).toBe('created');
  });

  it('does not keep a read that a newer version overtook while in flight', async () => {
    const { store, cache } = setup();
    store.values.set(NAME, 'old');
    store.hold();
    const slow = cache.read(NAME, 'fp-old');
    store.values.set(NAME, 'new');
    const fresh = cache.read(NAME, 'fp-new');
    store.release();
    expect((await slow).value).toBe('old');
    expect((await fresh).value).toBe('new');
    expect((await cache.read(NAME, 'fp-new')).value).toBe('new');
    expect(store.reads).toHaveLength(2);
  });

  it('rechecks a refused value once if it came from memory, and returns it only when it changed', async () => {
    const { store, clock, cache } = setup();
    store.values.set(NAME, 'old-key');
    const fresh = await cache.read(NAME, 'fp1');
    // Straight from the store: nothing newer to find, no read.
    expect(await cache.recheck(NAME, 'fp1', fresh)).toBeUndefined();
    expect(store.reads).toHaveLength(1);

    // From memory, the store unchanged: one read, nothing to retry with, and not again within the TTL.
    const cached = await cache.read(NAME, 'fp1');
    expect(cached.mayBeStale).toBe(true);
    expect(await cache.recheck(NAME, 'fp1', cached)).toBeUndefined();
    expect(store.reads).toHaveLength(2);
    const confirmed = await cache.read(NAME, 'fp1');
    expect(confirmed).toEqual({ value: 'old-key', mayBeStale: false });
    expect(await cache.recheck(NAME, 'fp1', confirmed)).toBeUndefined();
    expect(store.reads).toHaveLength(2);

    // Past the TTL, a value from memory is worth one recheck again; this time the store changed.
    clock.now += TTL_MS;
    await cache.read(NAME, 'fp1');
    store.values.set(NAME, 'new-key');
    const stale = await cache.read(NAME, 'fp1');
    expect(stale).toEqual({ value: 'old-key', mayBeStale: true });
    expect(await cache.recheck(NAME, 'fp1', stale)).toBe('new-key');
    expect((await cache.read(NAME, 'fp1')).value).toBe('new-key');
    expect(store.reads).toHaveLength(4);
  });

  it('shares one recheck between callers refused together', async () => {
    const { store, counts, cache } = setup();
    store.values.set(NAME, 'old-key');
    await cache.read(NAME, 'fp1');
    const cached = await cache.read(NAME, 'fp1');
    store.values.set(NAME, 'new-key');
    const both = await Promise.all([cache.recheck(NAME, 'fp1', cached), cache.recheck(NAME, 'fp1', cached)]);
    expect(both).toEqual(['new-key', 'new-key']);
    expect(store.reads).toHaveLength(2);
    expect(counts.miss).toBe(2);
  });

  it('writes through: a put is served from memory, a failed put leaves nothing behind', async () => {
    const { store, cache } = setup();
    await cache.put(NAME, 'fp2', 'written');
    expect(store.values.get(NAME)).toBe('written');
    expect(await cache.read(NAME, 'fp2')).toEqual({ value: 'written', mayBeStale: true });
    expect(store.reads).toEqual([]);

    store.failWith = new SecretThrottledError(NAME);
    await expect(cache.put(NAME, 'fp3', 'lost')).rejects.toBeInstanceOf(SecretThrottledError);
    store.failWith = undefined;
    expect(cache.size).toBe(0);
    expect((await cache.read(NAME, 'fp2')).value).toBe('written');
    expect(store.reads).toEqual([NAME]);
  });

  it('forgets a name, or only the version given', async () => {
    const { store, cache } = setup();
    store.values.set(NAME, 'value');
    await cache.read(NAME, 'fp1');
    cache.forget(NAME, 'fp-other');
    expect(cache.size).toBe(1);
    cache.forget(NAME, 'fp1');
    expect(cache.size).toBe(0);
    await cache.read(NAME, 'fp1');
    cache.forget(NAME);
    expect(cache.size).toBe(0);
    expect(store.reads).toHaveLength(2);
  });
});

describe('SecretCache on the Secrets Manager adapter', () => {
  const sm = mockClient(SecretsManagerClient);
  const aws = new AwsSecretStore(new SecretsManagerClient({ region: 'us-east-1' }), 'tunnelkeeper/test');
  const getCalls = () => sm.commandCalls(GetSecretValueCommand).length;

  beforeEach(() => {
    sm.reset();
  });
  afterAll(() => sm.restore());

  it('makes one GetSecretValue per version, however many reads, concurrent or not', async () => {
    let secret = '{"keys":"first"}';
    sm.on(GetSecretValueCommand, { SecretId: `tunnelkeeper/test/${NAME}` }).callsFake(async () => ({
      SecretString: secret,
    }));
    const cache = new SecretCache(aws, { ttlMs: TTL_MS, maxEntries: 100 });
    await Promise.all(Array.from({ length: 10 }, () => cache.read(NAME, 'fp1')));
    for (let i = 0; i < 10; i++) expect((await cache.read(NAME, 'fp1')).value).toBe(secret);
    expect(getCalls()).toBe(1);
    secret = '{"keys":"rotated"}';
    for (let i = 0; i < 10; i++) expect((await cache.read(NAME, 'fp2')).value).toBe(secret);
    expect(getCalls()).toBe(2);
  });

  it('calls again after ResourceNotFoundException and throttling, neither of which is kept', async () => {
    const cache = new SecretCache(aws, { ttlMs: TTL_MS, maxEntries: 100 });
    sm.on(GetSecretValueCommand)
      .rejectsOnce(
        new ResourceNotFoundException({ message: 'not found', $metadata: { httpStatusCode: 400 } }),
      )
      .rejectsOnce(Object.assign(new Error('slow down'), { name: 'ThrottlingException', $metadata: {} }))
      .resolves({ SecretString: 'finally' });
    await expect(cache.read(NAME, 'fp1')).rejects.toBeInstanceOf(SecretNotFoundError);
    await expect(cache.read(NAME, 'fp1')).rejects.toBeInstanceOf(SecretThrottledError);
    expect((await cache.read(NAME, 'fp1')).value).toBe('finally');
    expect((await cache.read(NAME, 'fp1')).value).toBe('finally');
    expect(getCalls()).toBe(3);
  });
});

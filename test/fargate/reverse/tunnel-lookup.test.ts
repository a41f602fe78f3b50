/**
 * How a login finds its tunnel: the cache serves only when storage is out (never instead of an
 * answer: deleted, disabled and rotated are honoured as soon as storage answers), and an outage
 * without a recent copy is "unavailable", never "no such tunnel". Storage errors are the SDK's
 * real error shapes (aws-sdk-client-mock is not needed: the read is a function).
 */
import { ConditionalCheckFailedException, DynamoDBServiceException } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import { TunnelCache } from '../../../fargate/reverse/tunnel-cache';
import { TunnelLookup } from '../../../fargate/reverse/tunnel-lookup';
import { StorageUnavailableError } from '../../../shared/errors';
import type { TunnelRecord } from '../../../shared/tunnel';

const record = (id: string, changes: Partial<TunnelRecord> = {}): TunnelRecord => ({
  id,
  workspaceId: 'default',
  name: 'warehouse',
  type: 'reverse',
  enabled: true,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  version: 1,
  port: 20001,
  service: { host: '127.0.0.1', port: 5432 },
  publicKey: 'ssh-ed25519 AAAA',
  publicKeyFingerprint: 'SHA256:x',
  ...changes,
});

const networkError = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:8000`), { code });
const serviceError = (name: string, httpStatusCode: number, fault: 'client' | 'server') =>
  new DynamoDBServiceException({ name, $fault: fault, $metadata: { httpStatusCode }, message: name });

/**
 * A lookup over a scripted store: each read takes the next answer (a record, undefined, an error,
 * 'hang', or a record that comes when its promise resolves).
 */
type Answer = TunnelRecord | undefined | { throws: unknown } | 'hang' | Promise<TunnelRecord>;
const fails = (err: unknown) => ({ throws: err });
function harness(options: { timeoutMs?: number; maxInFlight?: number; ttlMs?: number } = {}) {
  let now = 0;
  const answers: Answer[] = [];
  let reads = 0;
  const cache = new TunnelCache({ maxTunnels: 100, ttlMs: options.ttlMs ?? 3_600_000 }, () => now);
  const lookup = new TunnelLookup({
    read: async () => {
      reads++;
      const answer = answers.shift();
      if (answer === 'hang') return new Promise<never>(() => {});
      if (answer && 'throws' in answer) throw answer.throws;
      return answer;
    },
    cache,
    timeoutMs: options.timeoutMs ?? 1_000,
    maxInFlight: options.maxInFlight ?? 10,
  });
  return { lookup, answers, reads: () => reads, advance: (ms: number) => (now += ms) };
}

describe('TunnelLookup', () => {
  it('serves a recently read tunnel from the cache while storage is out', async () => {
    const h = harness();
    h.answers.push(record('tn_a'), fails(networkError('ECONNREFUSED')));
    expect(await h.lookup.find('tn_a')).toEqual({ outcome: 'read', tunnel: record('tn_a') });
    h.advance(90_000);
    const during = await h.lookup.find('tn_a');
    expect(during).toMatchObject({ outcome: 'cached', tunnel: record('tn_a'), ageMs: 90_000 });
  });

  it('says unavailable, not "no such tunnel", for a tunnel it has no recent copy of', async () => {
    const h = harness({ ttlMs: 60_000 });
    h.answers.push(record('tn_a'), fails(networkError('ECONNREFUSED')), fails(networkError('ECONNREFUSED')));
    await h.lookup.find('tn_a');
    expect(await h.lookup.find('tn_b')).toMatchObject({ outcome: 'unavailable' });
    h.advance(60_001);
    expect(await h.lookup.find('tn_a')).toMatchObject({ outcome: 'unavailable' });
  });

  it('never lets the cache override an answer: deleted, disabled and rotated count at once', async () => {
    const h = harness();
    h.answers.push(record('tn_a'), record('tn_a', { enabled: false }), fails(networkError('ECONNREFUSED')));
    await h.lookup.find('tn_a');
    expect(await h.lookup.find('tn_a')).toEqual({
      outcome: 'read',
      tunnel: record('tn_a', { enabled: false }),
    });
    expect(await h.lookup.find('tn_a')).toMatchObject({ outcome: 'cached', tunnel: { enabled: false } });

    h.answers.push(undefined, fails(networkError('ECONNREFUSED')));
    expect(await h.lookup.find('tn_a')).toEqual({ outcome: 'read', tunnel: undefined });
    expect(await h.lookup.find('tn_a')).toMatchObject({ outcome: 'unavailable' });
  });

  it.each([
    ['the store says so', new StorageUnavailableError('unreachable')],
    ['connection refused', networkError('ECONNREFUSED')],
    ['throttling', serviceError('ProvisionedThroughputExceededException', 400, 'client')],
    ['a 500', serviceError('InternalServerError', 500, 'server')],
  ])('counts as an outage: %s', async (_, err) => {
    const h = harness();
    h.answers.push(record('tn_a'), fails(err));
    await h.lookup.find('tn_a');
    expect(await h.lookup.find('tn_a')).toMatchObject({ outcome: 'cached', cause: err });
  });

  it('throws errors that are answers instead of serving the cache', async () => {
    const h = harness();
    h.answers.push(
      record('tn_a'),
      fails(new ZodError([])),
      fails(serviceError('ValidationException', 400, 'client')),
      fails(new ConditionalCheckFailedException({ message: 'no', $metadata: {} })),
    );
    await h.lookup.find('tn_a');
    await expect(h.lookup.find('tn_a')).rejects.toBeInstanceOf(ZodError);
    await expect(h.lookup.find('tn_a')).rejects.toMatchObject({ name: 'ValidationException' });
    await expect(h.lookup.find('tn_a')).rejects.toMatchObject({ name: 'ConditionalCheckFailedException' });
  });

  it('counts a read past its deadline as an outage', async () => {
    const h = harness({ timeoutMs: 50 });
    h.answers.push(record('tn_a'), 'hang');
    await h.lookup.find('tn_a');
    const started = performance.now();
    const result = await h.lookup.find('tn_a');
    expect(result).toMatchObject({ outcome: 'cached' });
    expect(result.outcome === 'cached' && result.cause).toBeInstanceOf(StorageUnavailableError);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('shares one read among concurrent logins of a tunnel, and bounds reads waiting on a hung storage', async () => {
    const h = harness({ timeoutMs: 50, maxInFlight: 2 });
    h.answers.push('hang', 'hang');
    const results = await Promise.all([h.lookup.find('tn_a'), h.lookup.find('tn_a'), h.lookup.find('tn_b')]);
    expect(h.reads()).toBe(2);
    expect(results.map((r) => r.outcome)).toEqual(['unavailable', 'unavailable', 'unavailable']);
    // Both still hang: a third tunnel is not read at all.
    expect(await h.lookup.find('tn_c')).toMatchObject({ outcome: 'unavailable' });
    expect(h.reads()).toBe(2);
  });

  it('keeps the cache fresh from reads made elsewhere, and forgets tunnels they no longer find', async () => {
    const h = harness();
    h.lookup.sawRecords(['tn_a', 'tn_b'], new Map([['tn_a', record('tn_a')]]));
    h.answers.push(fails(networkError('ECONNRESET')), fails(networkError('ECONNRESET')));
    expect(await h.lookup.find('tn_a')).toMatchObject({ outcome: 'cached' });
    expect(await h.lookup.find('tn_b')).toMatchObject({ outcome: 'unavailable' });
  });

  it('does not remember an answer older than a change the log names: its read began before the change landed', async () => {
    const h = harness();
    let answer: (record: TunnelRecord) => void = () => {};
    h.answers.push(new Promise<TunnelRecord>((resolve) => (answer = resolve)));
    const login = h.lookup.find('tn_a');
    h.lookup.confirmUnchanged(0, [{ tunnelId: 'tn_a', version: 2 }]);
    answer(record('tn_a', { version: 1 }));
    expect(await login).toMatchObject({ outcome: 'read', tunnel: { version: 1 } });
    h.lookup.sawRecords(['tn_a'], new Map([['tn_a', record('tn_a', { version: 1 })]]));
    h.answers.push(fails(networkError('ECONNREFUSED')));
    expect(await h.lookup.find('tn_a')).toMatchObject({ outcome: 'unavailable' });
  });
});

describe('TunnelCache', () => {
  it('holds a bounded number of tunnels, dropping the least recently read', () => {
    const cache = new TunnelCache({ maxTunnels: 2, ttlMs: 1_000 });
    cache.remember(record('tn_a'));
    cache.remember(record('tn_b'));
    cache.remember(record('tn_a'));
    cache.remember(record('tn_c'));
    expect(cache.size).toBe(2);
    expect(['tn_a', 'tn_b', 'tn_c'].map((id) => cache.recall(id) !== undefined)).toEqual([true, false, true]);
  });

  it('counts a record the change log vouches for as read then, and forgets the ones it names', () => {
    let now = 0;
    const cache = new TunnelCache({ maxTunnels: 10, ttlMs: 1_000 }, () => now);
    cache.remember(record('tn_a'));
    cache.remember(record('tn_b'));
    now = 900;
    cache.confirmUnchanged(800, [{ tunnelId: 'tn_b', version: 2 }]);
    now = 1_500;
    expect(cache.recall('tn_a')).toMatchObject({ ageMs: 700 });
    expect(cache.recall('tn_b')).toBeUndefined();
    now = 1_801;
    expect(cache.recall('tn_a')).toBeUndefined();
  });

  it('keeps a record as new as the changes the log names, however many polls name them', () => {
    let now = 0;
    const cache = new TunnelCache({ maxTunnels: 10, ttlMs: 600_000 }, () => now);
    const disabled = record('tn_a', { enabled: false, version: 2 });
    cache.remember(disabled);
    cache.remember(record('tn_b', { version: 5 }));
    cache.remember(record('tn_c'));
    // The polls overlap by 30 s: a change is named by several of them.
    for (const at of [1_000, 3_000, 5_000]) {
      now = at;
      cache.confirmUnchanged(0, [
        { tunnelId: 'tn_a', version: 2 },
        { tunnelId: 'tn_b', version: 6 },
        { tunnelId: 'tn_c' }, // deleted
      ]);
    }
    expect(cache.recall('tn_a')).toMatchObject({ record: disabled, ageMs: 5_000 });
    expect(cache.recall('tn_b')).toBeUndefined();
    expect(cache.recall('tn_c')).toBeUndefined();
    // A late answer of a deleted tunnel is not kept while the log names the delete.
    cache.remember(record('tn_c'));
    expect(cache.recall('tn_c')).toBeUndefined();
  });

  it.each([
    ['a size of 0', { maxTunnels: 0, ttlMs: 1_000 }],
    ['a TTL of 0', { maxTunnels: 10, ttlMs: 0 }],
  ])('keeps nothing with %s', (_, settings) => {
    const cache = new TunnelCache(settings);
    cache.remember(record('tn_a'));
    expect(cache.recall('tn_a')).toBeUndefined();
  });
});

/**
 * The carried tunnels kept in their shards as they change (shared/worker-carries.ts): whatever the
 * order of comings and goings, each shard is what a split of the whole list from scratch gives, and
 * a shard no change touched keeps its revision without being computed again.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CARRIES_SHARDS,
  CarriedShards,
  type CarriedTunnel,
  carriesRev,
  carriesShardOf,
} from '../../shared/worker-carries';

/** The shards of `tunnels` computed from scratch: each sorted by id. */
function fromScratch(tunnels: ReadonlyMap<string, number>): CarriedTunnel[][] {
  const shards: CarriedTunnel[][] = Array.from({ length: CARRIES_SHARDS }, () => []);
  for (const [id, port] of tunnels) shards[carriesShardOf(id)]?.push([id, port]);
  for (const shard of shards) shard.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return shards;
}

const step = fc.oneof(
  fc.record({
    op: fc.constant('set' as const),
    id: fc.integer({ min: 0, max: 200 }),
    port: fc.integer({ min: 20_000, max: 20_003 }),
  }),
  fc.record({ op: fc.constant('delete' as const), id: fc.integer({ min: 0, max: 200 }) }),
);

describe('carried shards', () => {
  it('match a split from scratch after any sequence of sets and deletes', () => {
    fc.assert(
      fc.property(
        fc.array(step, { maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (steps, peeks) => {
          const carried = new CarriedShards();
          const truth = new Map<string, number>();
          steps.forEach((s, i) => {
            const id = `tun_${s.id}`;
            if (s.op === 'set') {
              carried.set(id, s.port);
              truth.set(id, s.port);
            } else {
              carried.delete(id);
              truth.delete(id);
            }
            // Reading a shard midway caches it: later changes must still reach it.
            if (peeks.includes(i)) carried.shard(i % CARRIES_SHARDS);
          });
          expect(carried.size).toBe(truth.size);
          const expected = fromScratch(truth);
          for (let shard = 0; shard < CARRIES_SHARDS; shard++) {
            const holds = expected[shard] ?? [];
            expect(carried.shard(shard)).toEqual({ holds, rev: carriesRev(holds) });
          }
          for (const id of truth.keys()) expect(carried.has(id)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('computes a shard again only after a change to it', () => {
    const carried = CarriedShards.of(Array.from({ length: 1_000 }, (_, i) => [`tun_${i}`, 20_000 + i]));
    const before = Array.from({ length: CARRIES_SHARDS }, (_, i) => carried.shard(i));
    carried.set('tun_new', 29_999);
    carried.set('tun_1', 20_001); // the port it has: no change
    const touched = carriesShardOf('tun_new');
    for (let i = 0; i < CARRIES_SHARDS; i++) {
      if (i === touched) expect(carried.shard(i).rev).not.toBe(before[i]?.rev);
      else expect(carried.shard(i)).toBe(before[i]); // the very same object: not computed again
    }
    carried.delete('tun_new');
    expect(carried.shard(touched).rev).toBe(before[touched]?.rev);
    expect(carried.size).toBe(1_000);
  });
});

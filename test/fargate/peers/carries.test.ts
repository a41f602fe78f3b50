/**
 * How gateways tell each other which reverse tunnels they carry (issue 18): in shards written only
 * when they change and read only when their revision moves, so idle tunnels cost no write and
 * steady peers no read, at any tunnel count. On DynamoDB Local.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CarriesWriter } from '../../../fargate/peers/carries-writer';
import { PeerCarries } from '../../../fargate/peers/peer-carries';
import type { WorkerHeartbeat } from '../../../shared/gateway-items';
import { createLogger } from '../../../shared/logger';
import { DynamoGatewayStore } from '../../../shared/store/dynamo-gateway-store';
import {
  CARRIES_SHARDS,
  CarriedShards,
  type CarriedTunnel,
  carriesShardOf,
} from '../../../shared/worker-carries';
import { createTestTable } from '../../helpers/dynamo';
import { countingClient } from '../../helpers/dynamo-count';

type Table = Awaited<ReturnType<typeof createTestTable>>;

const tunnels = (count: number, from = 0): CarriedTunnel[] =>
  Array.from({ length: count }, (_, i) => [`tun_${String(from + i).padStart(6, '0')}`, 20_000 + from + i]);

const beat = (workerId: string, carries: string[] | undefined, holds?: CarriedTunnel[]): WorkerHeartbeat => ({
  workerId,
  lastBeatAt: '2026-12-05T12:00:00.000Z',
  startedAt: '2026-12-05T11:00:00.000Z',
  address: '127.0.0.1',
  version: 'test',
  controlUrl: 'http://127.0.0.1:1',
  counts: { reverse: 0, standard: 0 },
  ...(carries ? { carries } : {}),
  ...(holds ? { holds } : {}),
});

const sorted = (list: readonly CarriedTunnel[]) => [...list].sort(([a], [b]) => a.localeCompare(b));

describe('carried tunnels between gateways', () => {
  let t: Table;
  beforeEach(async () => {
    t = await createTestTable();
  });
  afterEach(() => t.drop());

  const writerOver = (doc: Table['doc']) => {
    const store = new DynamoGatewayStore(doc, t.tableName);
    return new CarriesWriter({
      workerId: 'wk_a',
      putCarries: (c, ttl) => store.putCarries(c, ttl),
      ttlSeconds: 24 * 3600,
      logger: createLogger('error'),
    });
  };

  it('writes a shard only when it changed, and a peer reads only the shards whose revision moved', async () => {
    const writes = countingClient(t.doc);
    const writer = writerOver(writes.doc);
    let held = tunnels(1_000);
    const carried = CarriedShards.of(held);
    const first = await writer.write(carried);
    expect(first).toHaveLength(CARRIES_SHARDS);
    expect(writes.writes()).toBe(first.filter((rev) => rev !== '').length);

    const reads = countingClient(t.doc);
    const peer = new PeerCarries((refs) => new DynamoGatewayStore(reads.doc, t.tableName).getCarries(refs));
    expect(sorted((await peer.carriedBy([beat('wk_a', first)])).get('wk_a') ?? [])).toEqual(sorted(held));
    const readAtFirst = reads.itemsRead();
    expect(readAtFirst).toBe(first.filter((rev) => rev !== '').length);

    // Idle: no write, and the peer reads nothing.
    writes.reset();
    reads.reset();
    const idle = await writer.write(carried);
    expect(idle).toEqual(first);
    expect(writes.writes()).toBe(0);
    await peer.carriedBy([beat('wk_a', idle)]);
    expect(reads.itemsRead()).toBe(0);

    // One customer connects: one shard written, one shard read.
    held = [...held, ['tun_new', 29_999]];
    carried.set('tun_new', 29_999);
    const after = await writer.write(carried);
    expect(writes.writes()).toBe(1);
    expect(after.filter((rev, shard) => rev !== first[shard])).toHaveLength(1);
    expect(after[carriesShardOf('tun_new')]).not.toBe(first[carriesShardOf('tun_new')]);
    const read = (await peer.carriedBy([beat('wk_a', after)])).get('wk_a') ?? [];
    expect(reads.itemsRead()).toBe(1);
    expect(sorted(read)).toEqual(sorted(held));

    // Every customer leaves: nothing written (an empty shard is its revision ''), nothing read.
    writes.reset();
    reads.reset();
    for (const [tunnelId] of held) carried.delete(tunnelId);
    expect(carried.size).toBe(0);
    const emptied = await writer.write(carried);
    expect(emptied.every((rev) => rev === '')).toBe(true);
    expect(writes.writes()).toBe(0);
    expect((await peer.carriedBy([beat('wk_a', emptied)])).get('wk_a')).toEqual([]);
    expect(reads.itemsRead()).toBe(0);
  });

  it('advertises a shard’s new revision only once it is written', async () => {
    const store = new DynamoGatewayStore(t.doc, t.tableName);
    let failing = false;
    const writer = new CarriesWriter({
      workerId: 'wk_a',
      putCarries: (c, ttl) =>
        failing ? Promise.reject(new Error('table unavailable')) : store.putCarries(c, ttl),
      ttlSeconds: 24 * 3600,
      logger: createLogger('error'),
    });
    const before = await writer.write(CarriedShards.of(tunnels(10)));
    failing = true;
    expect(await writer.write(CarriedShards.of(tunnels(20)))).toEqual(before);
    failing = false;
    const after = await writer.write(CarriedShards.of(tunnels(20)));
    expect(after).not.toEqual(before);
    const peer = new PeerCarries((refs) => store.getCarries(refs));
    expect(sorted((await peer.carriedBy([beat('wk_a', after)])).get('wk_a') ?? [])).toEqual(
      sorted(tunnels(20)),
    );
  });

  it('takes a previous version’s inline holds, and forgets peers that are no longer live', async () => {
    const peer = new PeerCarries((refs) => new DynamoGatewayStore(t.doc, t.tableName).getCarries(refs));
    const old = await peer.carriedBy([beat('wk_old', undefined, tunnels(3))]);
    expect(old.get('wk_old')).toEqual(tunnels(3));
    const writer = writerOver(t.doc);
    const revs = await writer.write(CarriedShards.of(tunnels(5)));
    expect((await peer.carriedBy([beat('wk_a', revs)])).has('wk_old')).toBe(false);
  });
});

/**
 * The sweeper's passes whose cost follows change (issue 18): the pass over written tunnels (what
 * the table's stream names), and the periodic pass that reads only silent workers' holds and the
 * wake index. On DynamoDB Local, the gateways played through their own store (which writes the
 * holds), time a variable the tests move.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SweepDeps, sweep, sweepDue, sweepTunnels } from '../../../lambda/sweeper/sweep';
import { createLogger } from '../../../shared/logger';
import type { SweepFigures } from '../../../shared/metrics/operator-metrics';
import type { StatusSettings } from '../../../shared/status';
import { customerNotConnected } from '../../../shared/status-errors';
import { DynamoStatusStore } from '../../../shared/store/dynamo-status-store';
import { DynamoTunnelStore } from '../../../shared/store/dynamo-tunnel-store';
import { SHARD_COUNT } from '../../../shared/store/table';
import { RecordingSink } from '../../helpers/alerts';
import { createTestTable } from '../../helpers/dynamo';
import { countingClient } from '../../helpers/dynamo-count';
import { gatewaySim, iso, storeTunnels, T0 } from '../../helpers/gateway-sim';

type Table = Awaited<ReturnType<typeof createTestTable>>;

const S = 1000;
const MIN = 60 * S;
const SETTINGS: StatusSettings = {
  heartbeatIntervalMs: 15 * S,
  keepaliveIntervalMs: 15 * S,
  downGraceMs: 2 * MIN,
  bindHost: '127.0.0.1',
};

describe('sweep passes that follow change', () => {
  let t: Table;
  let clock: { ms: number };
  let sink: RecordingSink;

  beforeEach(async () => {
    t = await createTestTable();
    clock = { ms: T0 };
    sink = new RecordingSink();
    reported = [];
  });
  afterEach(() => t.drop());

  /** What the passes told the operator's metrics of the tunnels, the latest last. */
  let reported: SweepFigures['tunnels'][] = [];
  const countsReported = (state: string) =>
    (reported.at(-1) ?? []).filter((c) => c.state === state).reduce((sum, c) => sum + c.count, 0);

  const depsOver = (doc: Table['doc'] = t.doc): SweepDeps => ({
    metrics: { sweepFinished: (figures) => reported.push(figures.tunnels) },
    store: new DynamoStatusStore(doc, t.tableName),
    sinks: [sink],
    logger: createLogger('error'),
    settings: SETTINGS,
    now: () => new Date(clock.ms),
    random: () => 0.5,
    intervalMs: MIN,
  });
  const sim = () => gatewaySim(t.doc, t.tableName);
  /** `up` through the gateway's own store, as a worker records it (with its hold). */
  const up = (id: string, atMs: number, owner: string) =>
    sim().write(id, {
      state: 'up',
      since: iso(atMs),
      lastSeenAt: iso(atMs),
      owner,
      connId: `c-${id}`,
      connectedAt: iso(atMs),
    });
  /** The status the sweeper recorded. */
  const statusOf = async (id: string) =>
    (await new DynamoStatusStore(t.doc, t.tableName).getStatusItems([id])).get(id)?.status;

  it('finds a silent worker’s tunnels through its holds, records each lost once, and reads no other', async () => {
    const created = await storeTunnels(t.doc, t.tableName, 'ws_1', 20);
    const [onDead, onLive] = [created.slice(0, 10), created.slice(10)];
    for (const x of onDead) expect(await up(x.id, T0 - MIN, 'w-dead')).toBe(true);
    for (const x of onLive) expect(await up(x.id, T0 - MIN, 'w-live')).toBe(true);
    await sim().beat('w-dead', T0 - S);
    await sim().beat('w-live', T0 - S);
    // The loop's first pass reads them all (and marks since when the sweepers have seen the table).
    expect(await sweep(depsOver())).toMatchObject({ tunnels: 20, transitions: 20, errors: 0 });
    expect(countsReported('up')).toBe(20);

    // Past the bound for a silent worker (35 s), within a lost session's reconnect window (60 s).
    clock.ms = T0 + 40 * S;
    await sim().beat('w-live', clock.ms - S);
    const counted = countingClient(t.doc);
    const report = await sweepDue(depsOver(counted.doc));
    expect(report).toMatchObject({ tunnels: 10, transitions: 10, errors: 0 });
    for (const x of onDead) expect((await statusOf(x.id))?.error?.code).toBe('worker_lost');
    for (const x of onLive) expect((await statusOf(x.id))?.state).toBe('up');
    // The counts every process reads, moved by the changes alone (the pass read 10 tunnels, not 20).
    expect([countsReported('up'), countsReported('down')]).toEqual([10, 10]);
    // Told once: the holds are released. What comes next is the lost tunnels' own timer: past the
    // reconnect window, no customer came back (their pages follow after the grace).
    expect(await new DynamoStatusStore(t.doc, t.tableName).holdsOf('w-dead')).toEqual([]);
    clock.ms = T0 + 60 * S;
    await sim().beat('w-live', clock.ms - S);
    expect(await sweepDue(depsOver())).toMatchObject({ tunnels: 10, transitions: 0, errors: 0 });
    for (const x of onDead) expect((await statusOf(x.id))?.error?.code).toBe('customer_not_connected');
    clock.ms += S;
    await sim().beat('w-live', clock.ms - S);
    expect(await sweepDue(depsOver())).toMatchObject({ tunnels: 0, errors: 0 });
    // A delete through the API's store takes its tunnel out of the counts.
    const [gone] = onDead;
    if (!gone) throw new Error('no tunnel');
    await new DynamoTunnelStore(t.doc, t.tableName).deleteTunnel(gone);
    await sweepDue(depsOver());
    expect([countsReported('up'), countsReported('down')]).toEqual([10, 9]);
  });

  it('pages a down tunnel when its grace runs out from the wake index alone, once', async () => {
    const [tunnel] = await storeTunnels(t.doc, t.tableName, 'ws_1', 1);
    if (!tunnel) throw new Error('no tunnel');
    await up(tunnel.id, T0 - MIN, 'w1');
    await sim().beat('w1', T0 - S);
    await sweepTunnels(depsOver(), [tunnel.id]);
    expect(sink.sent).toEqual([]);

    // The worker records the customer gone; the stream names the tunnel.
    clock.ms = T0 + 5 * S;
    await sim().write(tunnel.id, {
      state: 'down',
      since: iso(clock.ms),
      lastSeenAt: iso(clock.ms),
      owner: 'w1',
      connId: `c-${tunnel.id}`,
      connectedAt: iso(T0 - MIN),
      error: customerNotConnected('session ended'),
    });
    expect(await sweepTunnels(depsOver(), [tunnel.id])).toMatchObject({ transitions: 1, alertsQueued: 0 });
    const store = new DynamoStatusStore(t.doc, t.tableName);
    const dueShards = async (at: number) =>
      (
        await Promise.all(Array.from({ length: SHARD_COUNT }, (_, s) => store.listDue(s, new Date(at))))
      ).flat();
    expect(await dueShards(clock.ms + 2 * MIN - 1)).toEqual([]);
    expect(await dueShards(clock.ms + 2 * MIN)).toEqual([tunnel.id]);

    // Periodic passes before the grace ends read nothing of it; the one after pages, once.
    for (const at of [T0 + MIN, T0 + 2 * MIN]) {
      clock.ms = at;
      await sim().beat('w1', at - S);
      expect(await sweepDue(depsOver())).toMatchObject({ tunnels: 0, alertsQueued: 0 });
    }
    clock.ms = T0 + 5 * S + 2 * MIN;
    await sim().beat('w1', clock.ms - S);
    expect(await sweepDue(depsOver())).toMatchObject({ tunnels: 1, alertsQueued: 1, errors: 0 });
    expect(sink.types()).toEqual([`tunnel.down ${tunnel.id}`]);
    // Delivered: nothing left to wake for.
    expect(await dueShards(clock.ms + 365 * 24 * 60 * MIN)).toEqual([]);
    clock.ms += MIN;
    await sim().beat('w1', clock.ms - S);
    expect(await sweepDue(depsOver())).toMatchObject({ tunnels: 0, alertsQueued: 0 });
    expect(sink.types()).toEqual([`tunnel.down ${tunnel.id}`]);
  });

  it('reads as much at 200 idle up tunnels as at 1 in a periodic pass', async () => {
    const itemsRead: number[] = [];
    for (const count of [1, 200]) {
      const table = count === 1 ? t : await createTestTable();
      try {
        const created = await storeTunnels(table.doc, table.tableName, `ws_${count}`, count);
        const writer = gatewaySim(table.doc, table.tableName);
        await Promise.all(created.map((x) => writer.up(x.id, T0 - MIN, 'w1', `c-${x.id}`)));
        await writer.beat('w1', T0 - S);
        const deps = (doc: Table['doc']): SweepDeps => ({
          ...depsOver(doc),
          store: new DynamoStatusStore(doc, table.tableName),
        });
        // The first full pass records every tunnel up (a transition each).
        expect(await sweep(deps(table.doc))).toMatchObject({ tunnels: count, errors: 0 });
        clock.ms = T0 + MIN;
        await writer.beat('w1', clock.ms - S);
        const counted = countingClient(table.doc);
        expect(await sweepDue(deps(counted.doc))).toMatchObject({ tunnels: 0, transitions: 0, errors: 0 });
        itemsRead.push(counted.itemsRead() + counted.queriedItems());
        clock.ms = T0;
      } finally {
        if (table !== t) await table.drop();
      }
    }
    // The mark, the one worker's heartbeat and the counts at most; no tunnel's items.
    expect(itemsRead[1]).toBe(itemsRead[0]);
    expect(itemsRead[0]).toBeLessThanOrEqual(3);
  }, 120_000);
});

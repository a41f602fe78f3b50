/**
 * The sweeper on DynamoDB Local, with the gateways played by writing STATE items and heartbeats
 * directly. Time is a parameter: the sweeper's clock is a variable the tests move.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SweepDeps, type SweepReport, startSweeperLoop, sweep } from '../../../lambda/sweeper/sweep';
import type { AlertDelivery, AlertSink } from '../../../shared/alerts/alert-sink';
import { LogAlertSink } from '../../../shared/alerts/log-sink';
import { verifySignature, WebhookAlertSink } from '../../../shared/alerts/webhook-sink';
import { AlertDeliveryError } from '../../../shared/errors';
import { createLogger } from '../../../shared/logger';
import { AlertSchema } from '../../../shared/schemas';
import type { StatusSettings } from '../../../shared/status';
import { customerNotConnected } from '../../../shared/status-errors';
import { type StatusItem, StatusItemSchema } from '../../../shared/status-items';
import { createDynamoClients } from '../../../shared/store/dynamo-client';
import { DynamoStatusStore } from '../../../shared/store/dynamo-status-store';
import { keys } from '../../../shared/store/table';
import { RecordingSink, startReceiver } from '../../helpers/alerts';
import { createTestTable } from '../../helpers/dynamo';
import { countingClient } from '../../helpers/dynamo-count';
import { gatewaySim, iso, storeTunnels, T0 } from '../../helpers/gateway-sim';
import { waitFor } from '../../helpers/wait-for';

type Table = Awaited<ReturnType<typeof createTestTable>>;
type DocClient = Table['doc'];

const S = 1000;
const MIN = 60 * S;
const SETTINGS: StatusSettings = {
  heartbeatIntervalMs: 15 * S,
  keepaliveIntervalMs: 15 * S,
  downGraceMs: 2 * MIN,
  bindHost: '127.0.0.1',
};
const SECRET = 'whsec_sweeper-test-secret-0123';

describe('sweep on DynamoDB Local', () => {
  let t: Table;
  let sim: ReturnType<typeof gatewaySim>;
  let clock: { ms: number };
  let logs: string[];

  beforeEach(async () => {
    t = await createTestTable();
    sim = gatewaySim(t.doc, t.tableName);
    clock = { ms: T0 };
    logs = [];
  });
  afterEach(() => t.drop());

  /** A sweeper over the test table: its own store (and, if given, its own client), our clock. */
  const sweeper = (
    sinks: AlertSink[],
    over: Partial<SweepDeps> & { doc?: DocClient; tableName?: string } = {},
  ) => {
    const { doc, tableName, ...rest } = over;
    const deps: SweepDeps = {
      store: new DynamoStatusStore(doc ?? t.doc, tableName ?? t.tableName),
      sinks,
      logger: createLogger('debug', (line) => logs.push(line)),
      settings: SETTINGS,
      now: () => new Date(clock.ms),
      random: () => 0.5,
      ...rest,
    };
    return (): Promise<SweepReport> => sweep(deps);
  };
  const tunnels = (count: number) => storeTunnels(t.doc, t.tableName, 'ws_1', count);
  const history = async (id: string) =>
    (await t.store.listEvents(id, 100)).map((e) => `${e.from}->${e.to}${e.error ? ` ${e.error.code}` : ''}`);
  const statusItem = async (id: string): Promise<StatusItem | undefined> => {
    const { Item } = await t.doc.send(
      new GetCommand({ TableName: t.tableName, Key: keys.tunnelStatus(id), ConsistentRead: true }),
    );
    return Item ? StatusItemSchema.parse(Item) : undefined;
  };
  const logged = (msg: string) =>
    logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);

  it('sends one tunnel.down once the tunnel has been down for the grace, and one tunnel.up when back', async () => {
    const [tunnel] = await tunnels(1);
    if (!tunnel) throw new Error('no tunnel');
    const record = new RecordingSink();
    const run = sweeper([record, new LogAlertSink(createLogger('debug', (l) => logs.push(l)))]);

    await sim.up(tunnel.id, T0 - MIN, 'w1', 'c1');
    await sim.beat('w1', T0 - S);
    expect(await run()).toMatchObject({ tunnels: 1, transitions: 1, alertsQueued: 0, errors: 0 });

    await sim.down(tunnel.id, T0 + 5 * S, 'w1', 'c1');
    for (const ms of [10 * S, MIN, 2 * MIN + 5 * S - 1]) {
      clock.ms = T0 + ms;
      await run();
    }
    expect(record.sent).toEqual([]);
    clock.ms = T0 + 5 * S + 2 * MIN;
    expect(await run()).toMatchObject({ alertsQueued: 1, delivered: 2, errors: 0 });
    for (let i = 0; i < 3; i++) {
      clock.ms += MIN;
      expect(await run()).toMatchObject({ transitions: 0, alertsQueued: 0, delivered: 0 });
    }
    expect(record.types()).toEqual([`tunnel.down ${tunnel.id}`]);
    const [down] = record.sent;
    expect(AlertSchema.strict().parse(down?.body)).toEqual({
      type: 'tunnel.down',
      tunnel: { id: tunnel.id, name: tunnel.name, workspaceId: 'ws_1' },
      status: {
        state: 'down',
        since: iso(T0 + 5 * S),
        lastSeenAt: iso(T0 + 5 * S),
        error: expect.objectContaining({ code: 'customer_not_connected' }),
      },
      at: iso(T0 + 5 * S + 2 * MIN),
    });
    expect(logged('tunnel alert')).toEqual([
      expect.objectContaining({
        level: 'warn',
        type: 'tunnel.down',
        tunnelId: tunnel.id,
        code: 'customer_not_connected',
      }),
    ]);

    clock.ms += MIN;
    await sim.up(tunnel.id, clock.ms - 10 * S, 'w1', 'c2');
    await sim.beat('w1', clock.ms - S);
    await run();
    for (let i = 0; i < 3; i++) {
      clock.ms += MIN;
      await sim.beat('w1', clock.ms - S);
      await run();
    }
    expect(record.types()).toEqual([`tunnel.down ${tunnel.id}`, `tunnel.up ${tunnel.id}`]);
    expect(record.sent[1]?.body.status).toEqual({
      state: 'up',
      since: iso(clock.ms - 3 * MIN - 10 * S),
      lastSeenAt: iso(clock.ms - 3 * MIN - 10 * S),
    });
    expect(await history(tunnel.id)).toEqual(['down->up', 'up->down customer_not_connected', 'pending->up']);
    // Nothing left behind: the outbox is empty, the incident closed.
    const item = await statusItem(tunnel.id);
    expect(item?.alerts).toEqual({});
    expect(item?.incident).toBeUndefined();
  });

  it('records a flap shorter than the grace in the history and sends nothing', async () => {
    const [tunnel] = await tunnels(1);
    if (!tunnel) throw new Error('no tunnel');
    const record = new RecordingSink();
    const run = sweeper([record]);
    await sim.up(tunnel.id, T0 - MIN, 'w1', 'c1');
    await sim.beat('w1', T0);
    await run();
    await sim.down(tunnel.id, T0 + S, 'w1', 'c1');
    clock.ms = T0 + 30 * S;
    await run();
    await sim.up(tunnel.id, T0 + 90 * S, 'w1', 'c2');
    await sim.beat('w1', T0 + 100 * S);
    for (const ms of [100 * S, 5 * MIN]) {
      clock.ms = T0 + ms;
      await sim.beat('w1', clock.ms);
      await run();
    }
    expect(record.sent).toEqual([]);
    expect(await history(tunnel.id)).toEqual(['down->up', 'up->down customer_not_connected', 'pending->up']);
  });

  it('records a flap between two sweeps with when and why it dropped, kept on the STATE item', async () => {
    const [tunnel] = await tunnels(1);
    if (!tunnel) throw new Error('no tunnel');
    const record = new RecordingSink();
    const run = sweeper([record]);
    const first = { owner: 'w1', connId: 'c1', connectedAt: iso(T0 - MIN) };
    expect(await sim.write(tunnel.id, { state: 'up', since: iso(T0 - MIN), ...first })).toBe(true);
    await sim.beat('w1', T0);
    await run();

    // Between two sweeps the session ends, and autossh is back 3 s later through another worker.
    const ended = customerNotConnected('the customer closed the session');
    expect(await sim.write(tunnel.id, { state: 'down', since: iso(T0 + S), error: ended, ...first })).toBe(
      true,
    );
    const second = { owner: 'w2', connId: 'c2', connectedAt: iso(T0 + 4 * S) };
    expect(await sim.write(tunnel.id, { state: 'up', since: iso(T0 + 4 * S), ...second })).toBe(true);
    await sim.beat('w2', T0 + 5 * S);
    clock.ms = T0 + 30 * S;
    expect(await run()).toMatchObject({ transitions: 2, alertsQueued: 0, errors: 0 });

    expect(record.sent).toEqual([]);
    expect((await t.store.listEvents(tunnel.id, 100)).slice(0, 2)).toEqual([
      { at: iso(T0 + 4 * S), from: 'down', to: 'up', downMs: 3 * S },
      { at: iso(T0 + S), from: 'up', to: 'down', error: ended },
    ]);
  });

  it('shows all 10 tunnels of a dead worker down with worker_lost and alerts once for each', async () => {
    const ten = await tunnels(10);
    const record = new RecordingSink();
    const run = sweeper([record]);
    for (const tunnel of ten) await sim.up(tunnel.id, T0 - MIN, 'w1', `c-${tunnel.id}`);
    await sim.beat('w1', T0);
    expect(await run()).toMatchObject({ tunnels: 10, transitions: 10 });

    // w1 is killed: its last heartbeat stays at T0.
    clock.ms = T0 + 35 * S;
    expect(await run()).toMatchObject({ transitions: 0 });
    clock.ms = T0 + 36 * S;
    expect(await run()).toMatchObject({ transitions: 10, alertsQueued: 0 });
    for (const tunnel of ten) {
      expect((await history(tunnel.id))[0]).toBe('up->down worker_lost');
    }
    clock.ms = T0 + 2 * MIN;
    expect(await run()).toMatchObject({ alertsQueued: 10, delivered: 10 });
    clock.ms += MIN;
    await run();
    expect(record.types().sort()).toEqual(ten.map((x) => `tunnel.down ${x.id}`).sort());

    // A second worker takes them over: one tunnel.up each.
    for (const tunnel of ten) await sim.up(tunnel.id, clock.ms, 'w2', `d-${tunnel.id}`);
    clock.ms += 10 * S;
    await sim.beat('w2', clock.ms);
    await run();
    clock.ms += 10 * S;
    await sim.beat('w2', clock.ms);
    await run();
    expect(record.sent).toHaveLength(20);
    expect(
      record
        .types()
        .filter((x) => x.startsWith('tunnel.up'))
        .sort(),
    ).toEqual(ten.map((x) => `tunnel.up ${x.id}`).sort());
  });

  it('sends each alert once when two sweepers run at the same time, round after round', async () => {
    const twenty = await tunnels(20);
    const other = createDynamoClients({ region: 'us-east-1', endpoint: t.endpoint });
    try {
      const a = new RecordingSink('record');
      const b = new RecordingSink('record');
      const runA = sweeper([a], { sweeperId: 'a' });
      const runB = sweeper([b], { sweeperId: 'b', doc: other.doc });
      const both = async () => {
        const reports = await Promise.all([runA(), runB()]);
        for (const r of reports) expect(r.errors).toBe(0);
        return reports.reduce((sum, r) => sum + r.conflicts, 0);
      };
      let conflicts = 0;
      const rounds = 3;
      for (const tunnel of twenty) await sim.up(tunnel.id, clock.ms - MIN, 'w1', `c0-${tunnel.id}`);
      await sim.beat('w1', clock.ms);
      conflicts += await both();
      for (let round = 1; round <= rounds; round++) {
        const wentDown = clock.ms + S;
        for (const tunnel of twenty) await sim.down(tunnel.id, wentDown, 'w1', `c${round - 1}-${tunnel.id}`);
        clock.ms = wentDown + MIN;
        conflicts += await both();
        clock.ms = wentDown + 2 * MIN;
        conflicts += await both();
        for (const tunnel of twenty) await sim.up(tunnel.id, clock.ms, 'w1', `c${round}-${tunnel.id}`);
        clock.ms += 10 * S;
        await sim.beat('w1', clock.ms);
        conflicts += await both();
      }
      const sent = [...a.sent, ...b.sent];
      expect(sent).toHaveLength(20 * rounds * 2);
      expect(new Set(sent.map((d) => `${d.body.tunnel.id} ${d.id}`)).size).toBe(sent.length);
      // The race did happen: the losers' writes were refused.
      expect(conflicts).toBeGreaterThan(0);
      for (const tunnel of twenty.slice(0, 5)) {
        expect(await history(tunnel.id)).toHaveLength(1 + 2 * rounds);
      }
    } finally {
      other.client.destroy();
    }
    // Four sweeps of 20 tunnels by two sweepers, three rounds: seconds on a quiet machine, 30 s on a busy one.
  }, 120_000);

  it('delivers a queued alert once when two sweepers race to retry it', async () => {
    const [tunnel] = await tunnels(1);
    if (!tunnel) throw new Error('no tunnel');
    let receiverDown = true;
    const first = new RecordingSink('record', () => receiverDown);
    await sim.down(tunnel.id, T0 - 10 * MIN, 'w1', 'c1');
    expect(await sweeper([first])()).toMatchObject({ alertsQueued: 1, retrying: 1, delivered: 0 });

    receiverDown = false;
    clock.ms += 10 * MIN;
    const other = createDynamoClients({ region: 'us-east-1', endpoint: t.endpoint });
    try {
      const a = new RecordingSink('record');
      const b = new RecordingSink('record');
      await Promise.all([
        sweeper([a], { sweeperId: 'a' })(),
        sweeper([b], { sweeperId: 'b', doc: other.doc })(),
      ]);
      expect([...a.types(), ...b.types()]).toEqual([`tunnel.down ${tunnel.id}`]);
    } finally {
      other.client.destroy();
    }
    expect((await statusItem(tunnel.id))?.alerts).toEqual({});
  });

  it('sends nothing twice across a restart in the middle of an incident, and tunnel.up after it', async () => {
    const [tunnel] = await tunnels(1);
    if (!tunnel) throw new Error('no tunnel');
    const before = new RecordingSink();
    await sim.up(tunnel.id, T0 - MIN, 'w1', 'c1');
    await sim.beat('w1', T0);
    await sweeper([before])();
    await sim.down(tunnel.id, T0 + S, 'w1', 'c1');
    clock.ms = T0 + 3 * MIN;
    await sweeper([before])();
    expect(before.types()).toEqual([`tunnel.down ${tunnel.id}`]);

    // A new process: new clients, new sinks, same table.
    const restarted = createDynamoClients({ region: 'us-east-1', endpoint: t.endpoint });
    try {
      const after = new RecordingSink();
      const run = sweeper([after], { doc: restarted.doc });
      for (let i = 0; i < 3; i++) {
        clock.ms += MIN;
        await run();
      }
      expect(after.sent).toEqual([]);
      await sim.up(tunnel.id, clock.ms, 'w1', 'c2');
      clock.ms += 10 * S;
      await sim.beat('w1', clock.ms);
      await run();
      await run();
      expect(after.types()).toEqual([`tunnel.up ${tunnel.id}`]);
      expect(before.sent).toHaveLength(1);
    } finally {
      restarted.client.destroy();
    }
  });

  it('lets another sweeper deliver an alert whose holder crashed, once the claim lapses', async () => {
    const [tunnel] = await tunnels(1);
    if (!tunnel) throw new Error('no tunnel');
    await sim.down(tunnel.id, T0 - 10 * MIN, 'w1', 'c1');
    // The first sweeper queues the alert, then dies before delivering: its sink never answers in
    // time, and the claim it took is still on the item.
    await sweeper([new RecordingSink('record', () => true)])();
    const store = new DynamoStatusStore(t.doc, t.tableName);
    const [entry] = Object.values((await statusItem(tunnel.id))?.alerts ?? {});
    if (!entry) throw new Error('no queued alert');
    clock.ms += 5 * MIN;
    expect(
      await store.claimAlert(
        tunnel.id,
        entry,
        { by: 'crashed', until: clock.ms + 2 * MIN },
        new Date(clock.ms),
      ),
    ).toBe(true);

    const survivor = new RecordingSink('record');
    const run = sweeper([survivor], { sweeperId: 'survivor' });
    clock.ms += MIN;
    await run();
    expect(survivor.sent).toEqual([]);
    clock.ms += MIN + 1;
    await run();
    expect(survivor.types()).toEqual([`tunnel.down ${tunnel.id}`]);
    // The crashed holder cannot settle over the survivor's outcome.
    expect(await store.settleAlert(tunnel.id, entry.id, 'crashed', undefined)).toBe(false);
  });

  it('retries a webhook that is down, delivers once it is back, in order, signed', async () => {
    const [tunnel] = await tunnels(1);
    if (!tunnel) throw new Error('no tunnel');
    let phase: 'destroy' | 503 | 200 = 'destroy';
    const receiver = await startReceiver(() => phase);
    try {
      const webhook = new WebhookAlertSink({
        url: receiver.url,
        secret: SECRET,
        timeoutMs: 5_000,
        retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
      });
      const run = sweeper([webhook]);
      await sim.up(tunnel.id, T0 - MIN, 'w1', 'c1');
      await sim.beat('w1', T0);
      await run();
      await sim.down(tunnel.id, T0, 'w1', 'c1');
      clock.ms = T0 + 2 * MIN;
      expect(await run()).toMatchObject({ alertsQueued: 1, retrying: 1 });
      expect(receiver.requests.map((r) => r.answered)).toEqual(['destroy', 'destroy']);

      // Not due yet (backoff 22.5 s at random 0.5): no request.
      clock.ms += 10 * S;
      await run();
      expect(receiver.requests).toHaveLength(2);
      phase = 503;
      clock.ms += 20 * S;
      expect(await run()).toMatchObject({ retrying: 1 });
      expect(receiver.requests).toHaveLength(4);

      // Back up while the receiver is still down: the tunnel.up waits behind the tunnel.down.
      await sim.up(tunnel.id, clock.ms, 'w1', 'c2');
      clock.ms += 5 * S;
      await sim.beat('w1', clock.ms);
      expect(await run()).toMatchObject({ transitions: 1, alertsQueued: 1 });
      expect(receiver.requests.every((r) => JSON.parse(r.body).type === 'tunnel.down')).toBe(true);

      phase = 200;
      clock.ms += 10 * MIN;
      await sim.beat('w1', clock.ms);
      expect(await run()).toMatchObject({ delivered: 2 });
      for (let i = 0; i < 3; i++) {
        clock.ms += 10 * MIN;
        await sim.beat('w1', clock.ms);
        await run();
      }
      const accepted = receiver.requests.filter((r) => r.answered === 200);
      expect(accepted.map((r) => JSON.parse(r.body).type)).toEqual(['tunnel.down', 'tunnel.up']);
      for (const r of accepted) {
        expect(verifySignature(r.body, String(r.headers['x-tunnelkeeper-signature']), SECRET)).toBe(true);
      }
      // Retries carried the very same signed bytes.
      const downs = receiver.requests.filter((r) => JSON.parse(r.body).type === 'tunnel.down');
      expect(new Set(downs.map((r) => r.body)).size).toBe(1);
      expect((await statusItem(tunnel.id))?.alerts).toEqual({});
    } finally {
      await receiver.close();
    }
  });

  it('gives up on a sink when the retry window ends, without holding back the others', async () => {
    const [tunnel] = await tunnels(1);
    if (!tunnel) throw new Error('no tunnel');
    const ok = new RecordingSink('ok');
    const dead = new RecordingSink('dead', () => true);
    const run = sweeper([ok, dead], { delivery: { retryWindowMs: 30 * MIN } });
    await sim.down(tunnel.id, T0 - 10 * MIN, 'w1', 'c1');
    expect(await run()).toMatchObject({ delivered: 1, retrying: 1 });
    for (let i = 0; i < 6; i++) {
      clock.ms += 5 * MIN;
      await run();
    }
    expect(dead.attempts).toBeGreaterThan(1);
    const attempts = dead.attempts;
    clock.ms = T0 + 30 * MIN + 1;
    expect(await run()).toMatchObject({ failed: 1 });
    clock.ms += 10 * MIN;
    await run();
    expect(dead.attempts).toBe(attempts);
    expect(ok.sent).toHaveLength(1);
    expect(logged('alert delivery gave up')).toEqual([
      expect.objectContaining({
        level: 'error',
        sink: 'dead',
        reason: 'retry window ended',
        tunnelId: tunnel.id,
      }),
    ]);
    expect((await statusItem(tunnel.id))?.alerts).toEqual({});
  });

  it('does not retry a delivery the receiver refused for good', async () => {
    const [tunnel] = await tunnels(1);
    if (!tunnel) throw new Error('no tunnel');
    const refusing = new RecordingSink('hook', () => true, false);
    const run = sweeper([refusing]);
    await sim.down(tunnel.id, T0 - 10 * MIN, 'w1', 'c1');
    expect(await run()).toMatchObject({ failed: 1, retrying: 0 });
    clock.ms += 10 * MIN;
    await run();
    expect(refusing.attempts).toBe(1);
    expect(logged('alert delivery gave up')).toHaveLength(1);
  });

  it('keeps a full pass’s steady-state writes flat: its mark and its counts, for 1 and for 200 idle up tunnels', async () => {
    const perMinute: Record<number, { sweeper: number; heartbeats: number; itemsRead: number }> = {};
    for (const count of [1, 200]) {
      const table = count === 1 ? t : await createTestTable();
      try {
        const created = await storeTunnels(table.doc, table.tableName, `ws_${count}`, count);
        const gateway = gatewaySim(table.doc, table.tableName);
        await Promise.all(created.map((x) => gateway.up(x.id, T0 - MIN, 'w1', `c-${x.id}`)));
        await gateway.beat('w1', T0);
        clock.ms = T0;
        const counted = countingClient(table.doc);
        const run = sweeper([new RecordingSink()], {
          doc: counted.doc,
          tableName: table.tableName,
          concurrency: 32,
        });
        // The first sweep records each tunnel's first transition (pending -> up), once; then its
        // mark and the counts it saw.
        expect(await run()).toMatchObject({ tunnels: count, transitions: count, errors: 0 });
        expect(counted.writes()).toBe(count + 2);

        // Then a minute of steady state: a heartbeat every 15 s from the one worker, one sweep.
        counted.reset();
        const heartbeatsDoc = gatewaySim(counted.doc, table.tableName);
        for (let beat = 1; beat <= 4; beat++) await heartbeatsDoc.beat('w1', T0 + beat * 15 * S);
        const heartbeats = counted.writes();
        counted.reset();
        clock.ms = T0 + MIN;
        const steady = await run();
        expect(steady).toMatchObject({ tunnels: count, transitions: 0, errors: 0 });
        perMinute[count] = { sweeper: counted.writes(), heartbeats, itemsRead: counted.itemsRead() };
        // A sweep reads each tunnel once: its STATE and STATUS in batches, the worker's heartbeat
        // once, and the sweepers' mark.
        expect(counted.itemsRead()).toBe(2 * count + 2);
        expect(counted.queries()).toBeLessThanOrEqual(16 + Math.ceil(count / 100));
      } finally {
        if (table !== t) await table.drop();
      }
    }
    expect(perMinute[1]).toEqual({ sweeper: 2, heartbeats: 4, itemsRead: 4 });
    expect(perMinute[200]).toEqual({ sweeper: 2, heartbeats: 4, itemsRead: 402 });
  }, 120_000);

  describe('startSweeperLoop', () => {
    it('sweeps every interval and sends an alert once however many sweeps see the incident', async () => {
      const [tunnel] = await tunnels(1);
      if (!tunnel) throw new Error('no tunnel');
      await sim.down(tunnel.id, Date.now() - 10 * MIN, 'w1', 'c1');
      const record = new RecordingSink();
      const loop = startSweeperLoop({
        store: new DynamoStatusStore(t.doc, t.tableName),
        sinks: [record],
        logger: createLogger('debug', (line) => logs.push(line)),
        settings: SETTINGS,
        intervalMs: 20,
      });
      try {
        await waitFor(() => logged('sweep finished').length >= 4, 10_000, { what: 'four sweeps' });
        expect(record.types()).toEqual([`tunnel.down ${tunnel.id}`]);
      } finally {
        await loop.stop();
      }
      const sweeps = logged('sweep finished').length;
      await new Promise((resolve) => setImmediate(resolve));
      expect(logged('sweep finished').length).toBe(sweeps);
    });

    it('stops within moments while a delivery hangs, leaving the alert queued for the next process', async () => {
      const [tunnel] = await tunnels(1);
      if (!tunnel) throw new Error('no tunnel');
      await sim.down(tunnel.id, Date.now() - 10 * MIN, 'w1', 'c1');
      let started = false;
      const hanging: AlertSink = {
        name: 'hook',
        send: ({ id, signal }: AlertDelivery) => {
          started = true;
          return new Promise<void>((_, reject) =>
            signal?.addEventListener('abort', () =>
              reject(new AlertDeliveryError('hook', id, true, 'stopped')),
            ),
          );
        },
      };
      const loop = startSweeperLoop({
        store: new DynamoStatusStore(t.doc, t.tableName),
        sinks: [hanging],
        logger: createLogger('debug', (line) => logs.push(line)),
        settings: SETTINGS,
        intervalMs: 60_000,
      });
      await waitFor(() => started, 10_000, { what: 'the delivery to start' });
      const stopping = performance.now();
      await loop.stop();
      expect(performance.now() - stopping).toBeLessThan(2_000);
      const [entry] = Object.values((await statusItem(tunnel.id))?.alerts ?? {});
      expect(entry?.sinks.hook).toEqual({ state: 'pending', attempts: 0 });
    });
  });
});

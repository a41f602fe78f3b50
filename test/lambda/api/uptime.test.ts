/**
 * Issue 16, acceptance 6: `status.uptime` matches the events within 0.1 % after a scripted
 * sequence of outages. Forty days of a reverse tunnel's life on a controlled clock: the gateway's
 * STATE items and heartbeats written as a worker writes them, the real sweeper recording the
 * transitions on DynamoDB Local, the API answering with the same clock. At each checkpoint the
 * figures are recomputed independently from `GET .../events` and compared.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweep } from '../../../lambda/sweeper/sweep';
import { silentLogger } from '../../../shared/logger';
import { EventListSchema, type TunnelEvent, UptimeSchema } from '../../../shared/schemas';
import { DynamoStatusStore } from '../../../shared/store/dynamo-status-store';
import { createTestApi } from '../../helpers/api';
import { gatewaySim, T0 } from '../../helpers/gateway-sim';

const MIN = 60_000;
const H = 60 * MIN;
const D = 24 * H;
const WINDOWS = { '24h': D, '7d': 7 * D, '30d': 30 * D } as const;
const SETTINGS = {
  heartbeatIntervalMs: 15_000,
  keepaliveIntervalMs: 15_000,
  downGraceMs: 2 * MIN,
  bindHost: '127.0.0.1',
};

/** Up / (up + down) inside the window ending at `now`, from the creation time and the history alone. */
function fromEvents(
  createdAt: string,
  events: TunnelEvent[],
  nowMs: number,
  windowMs: number,
): number | null {
  const oldestFirst = [...events].reverse();
  let state = 'pending';
  let since = Date.parse(createdAt);
  let up = 0;
  let down = 0;
  const add = (end: number) => {
    const overlap = Math.min(end, nowMs) - Math.max(since, nowMs - windowMs);
    if (overlap <= 0) return;
    if (state === 'up') up += overlap;
    else if (state === 'down') down += overlap;
  };
  for (const event of oldestFirst) {
    add(Date.parse(event.at));
    state = event.to;
    since = Date.parse(event.at);
  }
  add(nowMs);
  return up + down === 0 ? null : up / (up + down);
}

describe('status.uptime against the events (issue 16, acceptance 6)', () => {
  const clock = { ms: T0 };
  let api: Awaited<ReturnType<typeof createTestApi>>;
  let sim: ReturnType<typeof gatewaySim>;
  let key: string;
  let id: string;
  let createdAt: string;
  let conn = 0;

  beforeAll(async () => {
    api = await createTestApi({ now: () => new Date(clock.ms) });
    sim = gatewaySim(api.table.doc, api.table.tableName);
    key = (await api.newWorkspace()).apiKey;
    const created = await api.call('POST', '/v1/tunnels', key, {
      type: 'reverse',
      name: 'warehouse',
      service: { host: 'db.internal', port: 5432 },
    });
    expect(created.status).toBe(201);
    id = created.json.id;
    createdAt = created.json.createdAt;
  });
  afterAll(() => api.close());

  const store = () => new DynamoStatusStore(api.table.doc, api.table.tableName);
  /** Moves the clock to `atMs`, the worker beating, and runs a sweep there, as the sweeper would. */
  const sweepAt = async (atMs: number) => {
    clock.ms = atMs;
    await sim.beat('w1', atMs, T0 - H);
    const report = await sweep({
      store: store(),
      sinks: [],
      logger: silentLogger,
      settings: SETTINGS,
      now: () => new Date(clock.ms),
    });
    expect(report.errors).toBe(0);
  };
  const connect = async (atMs: number) => {
    conn++;
    await sim.up(id, atMs, 'w1', `c${conn}`);
    await sweepAt(atMs + 20_000);
  };
  const disconnect = async (atMs: number) => {
    await sim.down(id, atMs, 'w1', `c${conn}`);
    await sweepAt(atMs + 20_000);
  };
  const setEnabled = async (enabled: boolean, atMs: number) => {
    clock.ms = atMs;
    expect((await api.call('PATCH', `/v1/tunnels/${id}`, key, { enabled })).status).toBe(200);
    await sweepAt(atMs + 20_000);
  };

  /** Reads status and events at `atMs` and compares every window. */
  const check = async (atMs: number) => {
    clock.ms = atMs;
    await sim.beat('w1', atMs, T0 - H);
    const status = (await api.call('GET', `/v1/tunnels/${id}/status`, key)).json;
    const uptime = UptimeSchema.parse(status.uptime);
    const listed = (await api.call('GET', '/v1/tunnels', key)).json.items[0];
    expect(listed.status.uptime).toEqual(uptime);
    const events = EventListSchema.parse((await api.call('GET', `/v1/tunnels/${id}/events`, key)).json).items;
    for (const [name, windowMs] of Object.entries(WINDOWS)) {
      const expected = fromEvents(createdAt, events, atMs, windowMs);
      const got = uptime[name as keyof typeof WINDOWS];
      if (expected === null) expect(got, name).toBeNull();
      else expect(Math.abs((got ?? -1) - expected), `${name}: ${got} vs ${expected}`).toBeLessThan(0.001);
    }
    return uptime;
  };

  it('follows forty days of outages, a disabled stretch and the windows sliding past them', async () => {
    const at = (days: number, hours = 0) => T0 + days * D + hours * H;
    expect(await check(at(0, 1))).toEqual({ '24h': null, '7d': null, '30d': null }); // pending
    await connect(at(0, 2));
    expect(await check(at(0, 5))).toEqual({ '24h': 1, '7d': 1, '30d': 1 });

    // Outages of every size, at odd times, with checks in the middle of some.
    const outages: [number, number][] = [
      [at(2, 3.25), 3 * H],
      [at(5, 17.5), 20 * MIN],
      [at(9, 1), 11 * H],
      [at(13, 22.75), 45 * MIN],
      [at(18, 6), 2.5 * H],
    ];
    for (const [start, length] of outages) {
      await disconnect(start);
      await check(start + length / 2); // down now: the open span counts
      await connect(start + length);
    }
    const mid = await check(at(19));
    expect(mid['24h']).toBeLessThan(1);
    expect(mid['7d']).toBeGreaterThan(mid['24h'] ?? 1); // the 2.5 h outage weighs more in a day

    // Disabled for two days: not counted; enabled again, down until the customer reconnects.
    await disconnect(at(21));
    await setEnabled(false, at(21, 0.1));
    const disabled = await check(at(22, 12)); // the day before: disabled throughout
    expect(disabled['24h']).toBeNull();
    await setEnabled(true, at(23));
    await connect(at(23, 0.5));
    for (const [start, length] of [
      [at(26, 13), 90 * MIN],
      [at(31, 2), 6 * H],
      [at(36, 8.5), 15 * MIN],
      [at(39, 20), 40 * MIN],
    ] as [number, number][]) {
      await disconnect(start);
      await connect(start + length);
    }
    // The 30 d window has slid past the first outages; the 24 h window past the last but one.
    const end = await check(at(40, 6));
    expect(end['30d']).toBeLessThan(1);
    await check(at(45));
    expect(await check(at(71))).toEqual({ '24h': 1, '7d': 1, '30d': 1 });
  });
});

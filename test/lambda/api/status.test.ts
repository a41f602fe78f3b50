/**
 * Status on read through the API: STATE items and heartbeats written as the gateway writes them,
 * read in batches, through the same status machine the sweeper runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createApp } from '../../../lambda/api/app';
import { sweep } from '../../../lambda/sweeper/sweep';
import { silentLogger } from '../../../shared/logger';
import { StatusSchema, TunnelListSchema } from '../../../shared/schemas';
import { DynamoStatusStore } from '../../../shared/store/dynamo-status-store';
import { createTestApi, PORT_RANGE } from '../../helpers/api';
import { countingClient } from '../../helpers/dynamo-count';
import { gatewaySim, iso, storeTunnels } from '../../helpers/gateway-sim';
import { withoutFigures } from '../../helpers/status-figures';

type Api = Awaited<ReturnType<typeof createTestApi>>;

const reverseBody = { type: 'reverse', name: 'warehouse', service: { host: 'db.internal', port: 5432 } };
const MIN = 60_000;

describe('tunnel status through the API', () => {
  let api: Api;
  let ws: { id: string; apiKey: string };
  let sim: ReturnType<typeof gatewaySim>;
  beforeAll(async () => {
    api = await createTestApi();
    ws = await api.newWorkspace();
    sim = gatewaySim(api.table.doc, api.table.tableName);
  });
  afterAll(() => api.close());

  const create = async () => (await api.call('POST', '/v1/tunnels', ws.apiKey, reverseBody)).json;
  const get = async (id: string) => (await api.call('GET', `/v1/tunnels/${id}`, ws.apiKey)).json;

  it('shows up and where to connect while the owner heartbeats, down with worker_lost once it stops', async () => {
    const tunnel = await create();
    const port = tunnel.reverse.remotePort;
    // After the tunnel was created: a status never begins before its tunnel existed.
    const since = Date.now() + 1;
    await sim.up(tunnel.id, since, 'w-api', 'c1');
    await sim.beat('w-api', Date.now());
    expect(await get(tunnel.id)).toMatchObject({
      status: { state: 'up', since: iso(since), lastSeenAt: iso(since) },
      connect: { host: '127.0.0.1', port },
    });

    // A worker that names its listener address: that is where workloads connect.
    await sim.state(tunnel.id, {
      state: 'up',
      since: iso(since),
      owner: 'w-api',
      connId: 'c1',
      connectedAt: iso(since),
      connectHost: '10.0.3.4',
    });
    expect((await get(tunnel.id)).connect).toEqual({ host: '10.0.3.4', port });

    await sim.beat('w-api', Date.now() - 10 * MIN);
    const lost = await get(tunnel.id);
    expect(lost.connect).toBeNull();
    expect(lost.status).toMatchObject({ state: 'down', error: { code: 'worker_lost' } });
    const status = (await api.call('GET', `/v1/tunnels/${tunnel.id}/status`, ws.apiKey)).json;
    // The same status either way (uptime moves with the clock between the two reads).
    expect(withoutFigures(StatusSchema.strict().parse(status))).toEqual(withoutFigures(lost.status));
  });

  it("names the port's stable host with CONNECT_HOSTS, whichever worker carries the tunnel", async () => {
    const tunnel = await create();
    const port = tunnel.reverse.remotePort;
    const { from, to } = PORT_RANGE;
    // Which block holds which port is the status machine's test; here, the API is configured by it.
    const app = api.appWith({ env: { CONNECT_HOSTS: `${from}-${to}=connect-a.internal` } });
    const since = Date.now() + 1;
    await sim.up(tunnel.id, since, 'w-stable', 'c1');
    await sim.beat('w-stable', Date.now());
    const read = async () => {
      const res = await app.request(`/v1/tunnels/${tunnel.id}`, {
        headers: { Authorization: `Bearer ${ws.apiKey}` },
      });
      return ((await res.json()) as { connect: unknown }).connect;
    };
    expect(await read()).toEqual({ host: 'connect-a.internal', port });
    // Another worker, which names its own address, takes the tunnel over: the address stays.
    await sim.state(tunnel.id, {
      state: 'up',
      since: iso(since),
      owner: 'w-stable-2',
      connId: 'c2',
      connectedAt: iso(since),
      connectHost: '10.0.3.5',
    });
    await sim.beat('w-stable-2', Date.now());
    expect(await read()).toEqual({ host: 'connect-a.internal', port });
  });

  it('judges heartbeats by the configured interval', async () => {
    const tunnel = await create();
    await sim.up(tunnel.id, Date.now() + 1, 'w-timing', 'c1');
    await sim.beat('w-timing', Date.now() - 2_000);
    const appWith = (timing?: { HEARTBEAT_INTERVAL_MS: string; SSH_KEEPALIVE_INTERVAL_MS: string }) =>
      api.appWith({ env: timing });
    const state = async (app: ReturnType<typeof createApp>) => {
      const res = await app.request(`/v1/tunnels/${tunnel.id}/status`, {
        headers: { Authorization: `Bearer ${ws.apiKey}` },
      });
      return ((await res.json()) as { state: string }).state;
    };
    // A beat 2 s old is fresh at the contract's 15 s, stale at 200 ms (stale after 600 ms).
    expect(await state(appWith())).toBe('up');
    expect(await state(appWith({ HEARTBEAT_INTERVAL_MS: '200', SSH_KEEPALIVE_INTERVAL_MS: '1000' }))).toBe(
      'down',
    );
  });

  it('filters the listing by the state the machine derives', async () => {
    const own = await api.newWorkspace('filters');
    const ids: Record<string, string> = {};
    for (const name of ['up', 'down', 'lost', 'pending', 'disabled']) {
      ids[name] = (await api.call('POST', '/v1/tunnels', own.apiKey, { ...reverseBody, name })).json.id;
    }
    const at = Date.now() - MIN;
    await sim.up(ids.up ?? '', at, 'w-filter', 'c1');
    await sim.down(ids.down ?? '', at, 'w-filter', 'c2');
    await sim.up(ids.lost ?? '', at, 'w-gone', 'c3');
    await sim.beat('w-filter', Date.now());
    await api.call('PATCH', `/v1/tunnels/${ids.disabled}`, own.apiKey, { enabled: false });
    const list = async (state: string) =>
      TunnelListSchema.parse((await api.call('GET', `/v1/tunnels?state=${state}`, own.apiKey)).json)
        .items.map((t) => t.name)
        .sort();
    expect(await list('up')).toEqual(['up']);
    expect(await list('down')).toEqual(['down', 'lost']);
    expect(await list('pending')).toEqual(['pending']);
    expect(await list('disabled')).toEqual(['disabled']);
  });

  it('answers 100 polls of an unchanged tunnel with 304 while its worker keeps heartbeating', async () => {
    const tunnel = await create();
    await sim.up(tunnel.id, Date.now() - MIN, 'w-poll', 'c1');
    await sim.beat('w-poll', Date.now());
    const first = await api.call('GET', `/v1/tunnels/${tunnel.id}/status`, ws.apiKey);
    expect(first.json.state).toBe('up');
    const etag = first.headers.get('ETag') ?? '';
    expect(etag).toMatch(/^".+"$/);
    const answers: number[] = [];
    for (let i = 0; i < 100; i++) {
      if (i % 10 === 0) await sim.beat('w-poll', Date.now());
      const res = await api.app.request(`/v1/tunnels/${tunnel.id}/status`, {
        headers: { Authorization: `Bearer ${ws.apiKey}`, 'If-None-Match': etag },
      });
      answers.push(res.status);
    }
    expect(answers).toEqual(Array(100).fill(304));

    await sim.down(tunnel.id, Date.now(), 'w-poll', 'c1');
    const changed = await api.app.request(`/v1/tunnels/${tunnel.id}/status`, {
      headers: { Authorization: `Bearer ${ws.apiKey}`, 'If-None-Match': etag },
    });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('ETag')).not.toBe(etag);
  });

  it('lists the history newest first, with errors, as the sweeper recorded it', async () => {
    const tunnel = await create();
    const store = new DynamoStatusStore(api.table.doc, api.table.tableName);
    const settings = {
      heartbeatIntervalMs: 15_000,
      keepaliveIntervalMs: 15_000,
      downGraceMs: 120_000,
      bindHost: '127.0.0.1',
    };
    const run = () => sweep({ store, sinks: [], logger: silentLogger, settings });
    const start = Date.now() + 1;
    await sim.up(tunnel.id, start, 'w-hist', 'c1');
    await sim.beat('w-hist', Date.now());
    await run();
    await sim.down(tunnel.id, start + MIN, 'w-hist', 'c1');
    await run();
    await sim.up(tunnel.id, start + 2 * MIN, 'w-hist', 'c2');
    await run();
    const events = (await api.call('GET', `/v1/tunnels/${tunnel.id}/events`, ws.apiKey)).json;
    expect(events.items).toEqual([
      { at: iso(start + 2 * MIN), from: 'down', to: 'up', downMs: MIN },
      {
        at: iso(start + MIN),
        from: 'up',
        to: 'down',
        error: expect.objectContaining({ code: 'customer_not_connected', hint: expect.any(String) }),
      },
      { at: iso(start), from: 'pending', to: 'up' },
    ]);
  });

  it('reads a page of 100 tunnels with their status in one query and batch reads', async () => {
    const own = await api.newWorkspace('hundred');
    const records = await storeTunnels(api.table.doc, api.table.tableName, own.id, 100);
    for (const r of records) await sim.up(r.id, Date.now() - MIN, 'w-hundred', `c-${r.id}`);
    await sim.beat('w-hundred', Date.now());
    const counted = countingClient(api.table.doc);
    const app = api.appWith({ doc: counted.doc });
    const res = await app.request('/v1/tunnels?limit=100', {
      headers: { Authorization: `Bearer ${own.apiKey}` },
    });
    const page = TunnelListSchema.parse(await res.json());
    expect(page.items).toHaveLength(100);
    expect(new Set(page.items.map((t) => t.status.state))).toEqual(new Set(['up']));
    // The API key lookup, its first-use mark (`lastUsedAt`, written at most every few minutes), the
    // page, STATE, STATUS and SIGNALS of 100 tunnels (300 keys), one heartbeat.
    expect(counted.commands().sort()).toEqual([
      'BatchGetCommand',
      'BatchGetCommand',
      'BatchGetCommand',
      'BatchGetCommand',
      'GetCommand',
      'QueryCommand',
      'UpdateCommand',
    ]);
    expect(counted.writes()).toBe(1);
    // Reading again costs the reads alone: the key is cached and marked.
    const before = counted.commands().length;
    await app.request('/v1/tunnels?limit=100', { headers: { Authorization: `Bearer ${own.apiKey}` } });
    expect(counted.commands().slice(before).sort()).toEqual([
      'BatchGetCommand',
      'BatchGetCommand',
      'BatchGetCommand',
      'BatchGetCommand',
      'QueryCommand',
    ]);
    expect(counted.writes()).toBe(1);
  });
});

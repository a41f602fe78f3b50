import { DeleteCommand, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutboxAlert, StatusRecord } from '../../../shared/status-items';
import { EVENT_RETENTION_DAYS, StatusItemSchema } from '../../../shared/status-items';
import { DynamoGatewayStore } from '../../../shared/store/dynamo-gateway-store';
import { DynamoStatusStore } from '../../../shared/store/dynamo-status-store';
import { shardOf, tunnelItem } from '../../../shared/store/dynamo-tunnel-store';
import type { StatusChange } from '../../../shared/store/status-store';
import { keys, SHARD_COUNT } from '../../../shared/store/table';
import type { TunnelRecord } from '../../../shared/tunnel';
import { sampleAlert } from '../../helpers/alerts';
import { createTestTable } from '../../helpers/dynamo';
import { gatewaySim, iso, putAll, reverseRecord, storeTunnels, T0 } from '../../helpers/gateway-sim';

type Table = Awaited<ReturnType<typeof createTestTable>>;

const DOWN: StatusRecord = {
  state: 'down',
  since: iso(T0),
  source: { state: 'down', since: iso(T0), connId: 'c1' },
  incident: { since: iso(T0), alerted: true },
};
const alert = (id = `tunnel.down@${iso(T0)}`): OutboxAlert => ({
  id,
  body: sampleAlert(),
  createdAt: iso(T0),
  deadline: T0 + 3_600_000,
  rev: 0,
  sinks: { log: { state: 'pending', attempts: 0 }, webhook: { state: 'pending', attempts: 0 } },
});

describe('DynamoStatusStore', () => {
  let t: Table;
  let store: DynamoStatusStore;
  beforeAll(async () => {
    t = await createTestTable();
    store = new DynamoStatusStore(t.doc, t.tableName, 2);
  });
  afterAll(() => t.drop());

  const change = (tunnelId: string, over: Partial<StatusChange> = {}): StatusChange => ({
    tunnelId,
    expectedVersion: 0,
    readState: undefined,
    next: DOWN,
    events: [{ at: iso(T0), from: 'up', to: 'down' }],
    alerts: [alert()],
    now: new Date(T0),
    ...over,
  });
  const read = async (tunnelId: string) => {
    const { Item } = await t.doc.send(
      new GetCommand({ TableName: t.tableName, Key: keys.tunnelStatus(tunnelId), ConsistentRead: true }),
    );
    return Item ? StatusItemSchema.parse(Item) : undefined;
  };

  /** One pass over every shard, as a sweep makes it: the ids of a workspace's tunnels, and the pages read. */
  const listEveryShard = async (workspaceId: string) => {
    const seen: string[] = [];
    let pages = 0;
    for (let shard = 0; shard < SHARD_COUNT; shard++) {
      let cursor: Record<string, unknown> | undefined;
      do {
        const page = await store.listShard(shard, cursor);
        pages++;
        expect(page.items.length).toBeLessThanOrEqual(2);
        for (const r of page.items) expect(shardOf(r.id)).toBe(shard);
        seen.push(...page.items.filter((r) => r.workspaceId === workspaceId).map((r) => r.id));
        cursor = page.cursor;
      } while (cursor);
    }
    return { ids: seen.sort(), pages };
  };

  it('lists every tunnel exactly once across the shards, in pages', async () => {
    const records = await storeTunnels(t.doc, t.tableName, 'ws_list', 40);
    const { ids, pages } = await listEveryShard('ws_list');
    expect(ids).toEqual(records.map((r) => r.id).sort());
    expect(pages).toBeGreaterThan(SHARD_COUNT);
  });

  it('moves tunnels stored with the bare id as shard sort key (older versions), so the standard pool finds them', async () => {
    const ws = 'ws_legacy';
    const records: TunnelRecord[] = Array.from({ length: 12 }, (_, n) =>
      n % 2 === 0
        ? reverseRecord(ws, n)
        : {
            ...reverseRecord(ws, n),
            type: 'standard',
            ssh: { host: 'bastion.example.com', port: 22, user: 'tk' },
          },
    );
    await putAll(
      t.doc,
      t.tableName,
      records.map((r) => ({ ...tunnelItem(r), gsi2sk: r.id })),
    );
    const pool = new DynamoGatewayStore(t.doc, t.tableName);
    const standardIds = async () =>
      (await pool.listStandardTunnels()).tunnels
        .filter((r) => r.workspaceId === ws)
        .map((r) => r.id)
        .sort();
    expect(await standardIds()).toEqual([]);

    const all = records.map((r) => r.id).sort();
    // The pass that moves them still lists each exactly once (pages of 2 move under its cursor).
    expect((await listEveryShard(ws)).ids).toEqual(all);
    expect(await standardIds()).toEqual(
      records
        .filter((r) => r.type === 'standard')
        .map((r) => r.id)
        .sort(),
    );
    for (const r of records) {
      const { Item } = await t.doc.send(new GetCommand({ TableName: t.tableName, Key: keys.tunnel(r.id) }));
      expect(Item?.gsi2sk).toBe(`${r.type}#${r.id}`);
    }
    expect((await listEveryShard(ws)).ids).toEqual(all);
  });

  it('records a change with its events and alerts, once per version', async () => {
    const [tunnel] = await storeTunnels(t.doc, t.tableName, 'ws_change', 1);
    if (!tunnel) throw new Error('no tunnel');
    expect(await store.recordChange(change(tunnel.id))).toBe(true);
    // A second sweeper that read the same (absent) version loses.
    expect(await store.recordChange(change(tunnel.id))).toBe(false);
    const item = await read(tunnel.id);
    expect(item).toMatchObject({ ...DOWN, version: 1, updatedAt: iso(T0) });
    expect(Object.keys(item?.alerts ?? {})).toEqual([`tunnel.down@${iso(T0)}`]);

    const up: StatusRecord = {
      state: 'up',
      since: iso(T0 + 1000),
      source: { state: 'up', since: iso(T0 + 1000) },
    };
    const later = new Date(T0 + 2000);
    const upChange = change(tunnel.id, {
      expectedVersion: 1,
      next: up,
      events: [{ at: iso(T0 + 1000), from: 'down', to: 'up' }],
      alerts: [alert(`tunnel.up@${iso(T0)}`)],
      now: later,
    });
    expect(await store.recordChange({ ...upChange, expectedVersion: 0 })).toBe(false);
    expect(await store.recordChange(upChange)).toBe(true);
    const updated = await read(tunnel.id);
    // Fields the new record lacks are removed; the outbox keeps the earlier alert.
    expect(updated).toMatchObject({ state: 'up', since: iso(T0 + 1000), version: 2 });
    expect(updated).not.toHaveProperty('incident');
    expect(Object.keys(updated?.alerts ?? {}).sort()).toEqual([
      `tunnel.down@${iso(T0)}`,
      `tunnel.up@${iso(T0)}`,
    ]);

    const { Items } = await t.doc.send(
      new QueryCommand({
        TableName: t.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :e)',
        ExpressionAttributeValues: { ':pk': keys.tunnel(tunnel.id).pk, ':e': 'EVENT#' },
        ScanIndexForward: false,
      }),
    );
    expect(Items?.map((i) => [i.from, i.to])).toEqual([
      ['down', 'up'],
      ['up', 'down'],
    ]);
    // Expire 30 days after they were recorded (epoch seconds, DynamoDB's TTL).
    expect(Items?.[0]?.expiresAt).toBe(Math.floor(later.getTime() / 1000) + EVENT_RETENTION_DAYS * 86_400);
    expect(await t.store.listEvents(tunnel.id, 10)).toEqual([
      { at: iso(T0 + 1000), from: 'down', to: 'up' },
      { at: iso(T0), from: 'up', to: 'down' },
    ]);
  });

  it('writes nothing for a tunnel deleted meanwhile', async () => {
    const [tunnel] = await storeTunnels(t.doc, t.tableName, 'ws_deleted', 1);
    if (!tunnel) throw new Error('no tunnel');
    await t.doc.send(new DeleteCommand({ TableName: t.tableName, Key: keys.tunnel(tunnel.id) }));
    expect(await store.recordChange(change(tunnel.id))).toBe(false);
    expect(await read(tunnel.id)).toBeUndefined();
    expect(await t.store.listEvents(tunnel.id, 10)).toEqual([]);
  });

  it('lets one claimant deliver an alert: by revision, until the claim lapses, settled only by its holder', async () => {
    const [tunnel] = await storeTunnels(t.doc, t.tableName, 'ws_claim', 1);
    if (!tunnel) throw new Error('no tunnel');
    const entry = alert();
    await store.recordChange(change(tunnel.id, { alerts: [entry] }));
    const now = new Date(T0 + 10_000);
    const claimA = { by: 'a', until: T0 + 70_000 };
    expect(await store.claimAlert(tunnel.id, entry, claimA, now)).toBe(true);
    expect(await store.claimAlert(tunnel.id, entry, { by: 'b', until: T0 + 70_000 }, now)).toBe(false);
    expect(await store.settleAlert(tunnel.id, entry.id, 'b', undefined)).toBe(false);

    // A partial outcome: log delivered, webhook to retry; a new revision, the claim released.
    const next: OutboxAlert = {
      ...entry,
      rev: 1,
      sinks: {
        log: { state: 'delivered', attempts: 1, deliveredAt: iso(T0 + 10_000) },
        webhook: { state: 'pending', attempts: 1, nextAttemptAt: T0 + 40_000, lastError: 'HTTP 503' },
      },
    };
    expect(await store.settleAlert(tunnel.id, entry.id, 'a', next)).toBe(true);
    expect((await read(tunnel.id))?.alerts[entry.id]).toEqual(next);
    // Someone who read revision 0 cannot claim it now: it would send the log line again.
    expect(await store.claimAlert(tunnel.id, entry, { by: 'b', until: T0 + 90_000 }, now)).toBe(false);

    // The holder of revision 1 crashes; after its claim lapses another takes over.
    expect(await store.claimAlert(tunnel.id, next, { by: 'a', until: T0 + 70_000 }, now)).toBe(true);
    expect(
      await store.claimAlert(tunnel.id, next, { by: 'b', until: T0 + 200_000 }, new Date(T0 + 70_000)),
    ).toBe(false);
    expect(
      await store.claimAlert(tunnel.id, next, { by: 'b', until: T0 + 200_000 }, new Date(T0 + 70_001)),
    ).toBe(true);
    expect(await store.settleAlert(tunnel.id, entry.id, 'a', undefined)).toBe(false);
    expect(await store.settleAlert(tunnel.id, entry.id, 'b', undefined)).toBe(true);
    expect((await read(tunnel.id))?.alerts).toEqual({});
    expect(
      await store.claimAlert(tunnel.id, next, { by: 'c', until: T0 + 300_000 }, new Date(T0 + 300_000)),
    ).toBe(false);
  });

  it('reads STATE and STATUS in batches, and heartbeats only of the owners of up tunnels', async () => {
    const records = await storeTunnels(t.doc, t.tableName, 'ws_sources', 3);
    const [a, b, c] = records.map((r) => r.id);
    if (!a || !b || !c) throw new Error('no tunnels');
    const sim = gatewaySim(t.doc, t.tableName);
    await sim.up(a, T0, 'w-up');
    await sim.down(b, T0, 'w-down');
    await sim.beat('w-up', T0);
    await sim.beat('w-down', T0);
    await store.recordChange(change(b, { alerts: [], readState: {} }));
    const sources = await store.getStatusSources([a, b, c]);
    expect(sources.get(a)).toEqual({
      state: expect.objectContaining({ state: 'up', owner: 'w-up' }),
      heartbeat: expect.objectContaining({ workerId: 'w-up', lastBeatAt: iso(T0) }),
    });
    expect(sources.get(b)).toEqual({
      state: expect.objectContaining({ state: 'down' }),
      status: expect.objectContaining({ state: 'down', version: 1 }),
    });
    expect(sources.has(c)).toBe(false);
  });

  it('reads SIGNALS with the sources for the API, never for the sweep, and names an unreadable one apart', async () => {
    const [a, b] = (await storeTunnels(t.doc, t.tableName, 'ws_signals', 2)).map((r) => r.id);
    if (!a || !b) throw new Error('no tunnels');
    const gateway = new DynamoGatewayStore(t.doc, t.tableName);
    const service = { reachable: false, since: iso(T0), message: 'Connection refused' };
    expect(await gateway.writeSignals(a, { service })).toBe(true);
    await t.doc.send(
      new PutCommand({
        TableName: t.tableName,
        Item: { ...keys.tunnelSignals(b), service: { reachable: 'no' } },
      }),
    );
    const sources = await store.getStatusSources([a, b]);
    expect(sources.get(a)).toEqual({ signals: { service } });
    expect(sources.get(b)?.signals).toBeUndefined();
    expect(sources.get(b)?.unreadable).toEqual([
      { id: b, item: 'SIGNALS', reason: expect.stringContaining('service.reachable') },
    ]);
    // The sweeper's read (alerting) takes STATE and STATUS only.
    const swept = await store.getStatusItems([a, b]);
    expect(swept.has(a)).toBe(false);
    expect(swept.has(b)).toBe(false);
  });
});

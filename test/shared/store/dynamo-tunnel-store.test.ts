import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueApiKey } from '../../../shared/api-keys';
import { ConflictError, NotFoundError, PortsExhaustedError, ValidationError } from '../../../shared/errors';
import { TunnelStateItemSchema } from '../../../shared/gateway-items';
import { newTunnelId, newWorkspaceId } from '../../../shared/ids';
import { customerNotConnected } from '../../../shared/status-errors';
import { DynamoGatewayStore } from '../../../shared/store/dynamo-gateway-store';
import { keys } from '../../../shared/store/table';
import type { TunnelRecord } from '../../../shared/tunnel';
import { TunnelSignalsSchema } from '../../../shared/tunnel-signals';
import { createTestTable } from '../../helpers/dynamo';
import { countingClient } from '../../helpers/dynamo-count';

type Table = Awaited<ReturnType<typeof createTestTable>>;

const tunnel = (workspaceId: string, name = 't'): Omit<TunnelRecord, 'port' | 'version'> => {
  const at = new Date().toISOString();
  return {
    id: newTunnelId(),
    workspaceId,
    name,
    type: 'reverse',
    enabled: true,
    createdAt: at,
    updatedAt: at,
    service: { host: '127.0.0.1', port: 5432 },
    publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDY+9r13e3TZdLXjFjGB/VqsT/aJbYWi/3NY9ddIWFTB',
    publicKeyFingerprint: 'SHA256:VDRTPgM4Qk7gQ5YNZcL6vbRbAHR+ZOtmkYiJbVLIDwo',
  };
};

describe('DynamoTunnelStore', () => {
  let t: Table;
  beforeAll(async () => {
    t = await createTestTable();
  });
  afterAll(() => t.drop());

  it('gives 50 parallel creates 50 distinct ports, each recorded in a port item', async () => {
    const ws = newWorkspaceId();
    const created = await Promise.all(
      Array.from({ length: 50 }, () => t.store.createTunnel(tunnel(ws), { from: 20000, to: 20099 })),
    );
    const ports = created.map((r) => r.port);
    expect(new Set(ports).size).toBe(50);
    for (const p of ports) expect(p).toBeGreaterThanOrEqual(20000);
    for (const r of created.slice(0, 5)) {
      const { Item } = await t.doc.send(new GetCommand({ TableName: t.tableName, Key: keys.port(r.port) }));
      expect(Item?.tunnelId).toBe(r.id);
    }
  });

  it('fills a small range completely, then reports exhaustion; a delete frees a port for reuse', async () => {
    const ws = newWorkspaceId();
    const range = { from: 31000, to: 31004 };
    const created = await Promise.all(
      Array.from({ length: 5 }, () => t.store.createTunnel(tunnel(ws), range)),
    );
    expect(created.map((r) => r.port).sort()).toEqual([31000, 31001, 31002, 31003, 31004]);
    await expect(t.store.createTunnel(tunnel(ws), range)).rejects.toBeInstanceOf(PortsExhaustedError);

    const [victim] = created;
    if (!victim) throw new Error('no tunnel');
    await t.store.deleteTunnel(victim);
    const again = await t.store.createTunnel(tunnel(ws), range);
    expect(again.port).toBe(victim.port);
    const { Item } = await t.doc.send(
      new GetCommand({ TableName: t.tableName, Key: keys.tunnel(victim.id) }),
    );
    expect(Item).toBeUndefined();
  });

  it('scopes reads to the workspace', async () => {
    const a = newWorkspaceId();
    const b = newWorkspaceId();
    const record = await t.store.createTunnel(tunnel(a), { from: 32000, to: 32999 });
    expect(await t.store.getTunnel(a, record.id)).toMatchObject({ id: record.id });
    expect(await t.store.getTunnel(b, record.id)).toBeUndefined();
    expect((await t.store.listTunnels(b, { limit: 10 })).items).toEqual([]);
    await expect(t.store.deleteTunnel({ ...record, workspaceId: b })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('rejects an update written against a stale version', async () => {
    const ws = newWorkspaceId();
    const record = await t.store.createTunnel(tunnel(ws), { from: 33000, to: 33999 });
    const first = await t.store.updateTunnel({ ...record, name: 'first' });
    expect(first.version).toBe(record.version + 1);
    await expect(t.store.updateTunnel({ ...record, name: 'stale' })).rejects.toBeInstanceOf(ConflictError);
    expect((await t.store.getTunnel(ws, record.id))?.name).toBe('first');
  });

  it('pages newest first with cursors, and refuses a cursor from another workspace', async () => {
    const ws = newWorkspaceId();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = tunnel(ws, `n${i}`);
      r.createdAt = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
      ids.push((await t.store.createTunnel(r, { from: 34000, to: 34999 })).id);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await t.store.listTunnels(ws, { limit: 2, cursor });
      seen.push(...page.items.map((r) => r.id));
      cursor = page.cursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const page = await t.store.listTunnels(ws, { limit: 2 });
    await expect(
      t.store.listTunnels(newWorkspaceId(), { limit: 2, cursor: page.cursor }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(t.store.listTunnels(ws, { limit: 2, cursor: 'not-a-cursor' })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });

  it('maps API key hashes to workspaces and keeps ensureWorkspace idempotent', async () => {
    const ws = { id: newWorkspaceId(), name: 'w', createdAt: new Date().toISOString() };
    const key = issueApiKey(ws.createdAt).record;
    expect(await t.store.ensureWorkspace(ws, key)).toEqual({ created: true, keyIsTheWorkspaces: true });
    expect(await t.store.ensureWorkspace(ws, key)).toEqual({ created: false, keyIsTheWorkspaces: true });
    expect(await t.store.findApiKey(key.hash)).toMatchObject({ workspaceId: ws.id, keyId: key.id });
    expect(await t.store.findApiKey('b'.repeat(64))).toBeUndefined();
    const other = { ...ws, id: newWorkspaceId() };
    await expect(t.store.ensureWorkspace(other, key)).rejects.toBeInstanceOf(ConflictError);
    await expect(t.store.createWorkspace(other, key)).rejects.toBeInstanceOf(ConflictError);
    const { Items } = await t.doc.send(new ScanCommand({ TableName: t.tableName }));
    expect(Items?.filter((i) => i.pk === `WS#${other.id}`)).toEqual([]);
  });
});

describe('DynamoGatewayStore', () => {
  let t: Table;
  beforeAll(async () => {
    t = await createTestTable();
  });
  afterAll(() => t.drop());

  it('returns every standard tunnel, enabled or not, and reads no reverse tunnel to find them', async () => {
    const ws = newWorkspaceId();
    const range = { from: 36000, to: 36999 };
    const standard = (enabled: boolean) => ({
      ...tunnel(ws),
      type: 'standard' as const,
      enabled,
      ssh: { host: 'bastion.example.com', port: 22, user: 'tunnel' },
    });
    const reverse = await Promise.all(
      Array.from({ length: 30 }, () => t.store.createTunnel(tunnel(ws), range)),
    );
    const wanted = await Promise.all([
      t.store.createTunnel(standard(true), range),
      t.store.createTunnel(standard(false), range),
    ]);
    const counting = countingClient(t.doc);
    const { tunnels: listed } = await new DynamoGatewayStore(counting.doc, t.tableName).listStandardTunnels();
    expect(listed.map((r) => r.id).sort()).toEqual(wanted.map((r) => r.id).sort());
    // The pool polls every few seconds: what it reads (and pays for) is the standard tunnels alone.
    expect(counting.queriedItems()).toBe(wanted.length);
    expect(listed.find((r) => !r.enabled)?.ssh?.host).toBe('bastion.example.com');
    expect(reverse).toHaveLength(30);
  });

  it("writes exactly the state item's fields, keeps the newest down through later writes, refuses older connections", async () => {
    const gateway = new DynamoGatewayStore(t.doc, t.tableName);
    const { id } = await t.store.createTunnel(tunnel(newWorkspaceId()), { from: 37000, to: 37999 });
    const error = customerNotConnected('the customer closed the session');
    const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
    const first = { owner: 'w1', connId: 'cA', connectedAt: at(1) };
    const read = async () =>
      (await t.doc.send(new GetCommand({ TableName: t.tableName, Key: keys.tunnelState(id) }))).Item;

    expect(
      await gateway.writeState(id, { state: 'up', since: at(1), connectHost: '10.0.0.1', ...first }),
    ).toBe(true);
    expect(await gateway.writeState(id, { state: 'down', since: at(2), error, ...first })).toBe(true);
    const afterDown = await read();
    expect(afterDown?.connectHost).toBeUndefined();
    expect(afterDown?.lastDown).toEqual({ since: at(2), connId: 'cA', error });

    // A reconnect through another worker before any sweep: the up replaces the down, not its memory.
    const second = { owner: 'w2', connId: 'cB', connectedAt: at(3) };
    expect(
      await gateway.writeState(id, { state: 'up', since: at(3), keyFingerprint: 'SHA256:x', ...second }),
    ).toBe(true);
    const { pk: _pk, sk: _sk, ...item } = (await read()) ?? {};
    expect(TunnelStateItemSchema.strict().parse(item)).toEqual({
      state: 'up',
      since: at(3),
      keyFingerprint: 'SHA256:x',
      ...second,
      lastDown: { since: at(2), connId: 'cA', error },
      // Every write counts: a reader records transitions only from the revision it read.
      rev: 3,
    });

    // The first connection's late write loses to the newer one and changes nothing.
    expect(await gateway.writeState(id, { state: 'down', since: at(4), error, ...first })).toBe(false);
    expect((await read())?.connId).toBe('cB');
    expect((await read())?.lastDown?.since).toBe(at(2));
    expect((await read())?.rev).toBe(3);

    // An up that replaced an unwritten down (the state writer, after an outage) brings its memory.
    const third = { owner: 'w3', connId: 'cC', connectedAt: at(5) };
    const missed = { since: at(4), connId: 'cB', error, cause: 'restart' as const };
    expect(await gateway.writeState(id, { state: 'up', since: at(5), ...third, lastDown: missed })).toBe(
      true,
    );
    expect(await read()).toMatchObject({ connId: 'cC', lastDown: missed, rev: 4 });
  });

  it('writes each signal on its own, only while the tunnel exists, and deletes them with it', async () => {
    const gateway = new DynamoGatewayStore(t.doc, t.tableName);
    const record = await t.store.createTunnel(tunnel(newWorkspaceId()), { from: 38000, to: 38999 });
    const read = async () =>
      (await t.doc.send(new GetCommand({ TableName: t.tableName, Key: keys.tunnelSignals(record.id) }))).Item;
    const loginRefused = {
      since: '2026-01-01T00:00:01.000Z',
      at: '2026-01-01T00:00:01.000Z',
      kind: 'wrong_key' as const,
      reason: "key is not the tunnel's key",
      source: '192.0.2.1',
      method: 'publickey',
      keyFingerprint: 'SHA256:x',
    };
    const service = { reachable: false, since: '2026-01-01T00:00:02.000Z', message: 'Connection refused' };
    expect(await gateway.writeSignals(record.id, { loginRefused })).toBe(true);
    // Another gateway's signal of the same tunnel leaves the first one in place.
    expect(await gateway.writeSignals(record.id, { service })).toBe(true);
    const { pk: _pk, sk: _sk, ...item } = (await read()) ?? {};
    expect(TunnelSignalsSchema.strict().parse(item)).toEqual({ loginRefused, service });
    expect(await gateway.writeSignals(record.id, { service: { reachable: true, since: 'later' } })).toBe(
      true,
    );
    expect((await read())?.service).toEqual({ reachable: true, since: 'later' });
    expect((await read())?.loginRefused).toEqual(loginRefused);

    await t.store.deleteTunnel(record);
    expect(await read()).toBeUndefined();
    // A write that arrives after the delete leaves nothing behind.
    expect(await gateway.writeSignals(record.id, { service })).toBe(false);
    expect(await read()).toBeUndefined();
  });
});

/**
 * The signal writer against DynamoDB Local behind a counting proxy (the proxy counts the writes
 * that reach the table, and is cut to make the table unreachable): one write per tunnel per
 * interval however many changes come, the newest value of each signal kept, nothing lost to an
 * outage, nothing written for a deleted tunnel.
 */

import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type CountingProxy, startCountingProxy } from '../../../bench/support/dynamo-proxy';
import { SignalWriter } from '../../../fargate/signals/signal-writer';
import { issueApiKey } from '../../../shared/api-keys';
import { newTunnelId, newWorkspaceId } from '../../../shared/ids';
import { createLogger } from '../../../shared/logger';
import { createDynamoClients } from '../../../shared/store/dynamo-client';
import { DynamoGatewayStore } from '../../../shared/store/dynamo-gateway-store';
import type { DynamoTunnelStore } from '../../../shared/store/dynamo-tunnel-store';
import { keys } from '../../../shared/store/table';
import type { TunnelRecord } from '../../../shared/tunnel';
import type { TunnelSignals } from '../../../shared/tunnel-signals';
import { createTestTable } from '../../helpers/dynamo';
import { waitFor } from '../../helpers/wait-for';

const INTERVAL_MS = 1_500;
const PORTS = { from: 15100, to: 15199 };
const T = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const failing = (message: string): TunnelSignals => ({ service: { reachable: false, since: T(1), message } });

describe('SignalWriter', () => {
  let table: Awaited<ReturnType<typeof createTestTable>>;
  let proxy: CountingProxy;
  let clients: ReturnType<typeof createDynamoClients>;
  let store: DynamoTunnelStore;
  let workspaceId: string;
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger('debug', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));

  beforeAll(async () => {
    table = await createTestTable();
    proxy = await startCountingProxy(inject('dynamoEndpoint'));
    clients = createDynamoClients({ region: 'us-east-1', endpoint: proxy.endpoint });
    store = table.store;
    workspaceId = newWorkspaceId();
    await store.createWorkspace(
      { id: workspaceId, name: 'acme', createdAt: T(0) },
      issueApiKey(new Date().toISOString()).record,
    );
  });

  afterAll(async () => {
    clients?.client.destroy();
    await proxy?.close();
    await table?.drop();
  });

  const newTunnel = (): Promise<TunnelRecord> =>
    store.createTunnel(
      {
        id: newTunnelId(),
        workspaceId,
        name: 'signals',
        type: 'reverse',
        enabled: true,
        createdAt: T(0),
        updatedAt: T(0),
        service: { host: '127.0.0.1', port: 5432 },
        publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDY+9r13e3TZdLXjFjGB/VqsT/aJbYWi/3NY9ddIWFTB',
        publicKeyFingerprint: 'SHA256:VDRTPgM4Qk7gQ5YNZcL6vbRbAHR+ZOtmkYiJbVLIDwo',
      },
      PORTS,
    );
  const writer = (settings: Partial<ConstructorParameters<typeof SignalWriter>[2]> = {}) =>
    new SignalWriter(new DynamoGatewayStore(clients.doc, table.tableName), logger, {
      minIntervalMs: INTERVAL_MS,
      maxPendingTunnels: 100,
      ...settings,
    });
  const stored = async (id: string) =>
    (
      await table.doc.send(
        new GetCommand({ TableName: table.tableName, Key: keys.tunnelSignals(id), ConsistentRead: true }),
      )
    ).Item;
  const writesSince = (from: number) => proxy.countsBetween(from).TransactWriteItems ?? 0;

  it('writes the first change at once and the burst after it in one write at the end of the interval', async () => {
    const { id } = await newTunnel();
    const w = writer();
    const from = Date.now();
    w.set(id, failing('first'));
    await waitFor(async () => (await stored(id))?.service?.message === 'first', INTERVAL_MS, {
      what: 'the first change, well within the interval',
    });
    const firstMs = Date.now() - from;
    for (let i = 0; i < 50; i++) w.set(id, failing(`burst ${i}`));
    w.set(id, { contention: { since: T(2), lastAt: T(3), takeovers: 5, sources: ['192.0.2.1'] } });
    await waitFor(async () => (await stored(id))?.service?.message === 'burst 49', 5 * INTERVAL_MS, {
      what: 'the burst written',
    });
    expect((await stored(id))?.contention?.takeovers).toBe(5);
    await w.flush(Date.now() + 5_000);
    expect(writesSince(from)).toBe(2);
    console.info(`figure: first signal stored ${firstMs} ms after the change; 52 changes → 2 writes`);
  });

  it('keeps signals through an outage and writes the newest of each once the table answers', async () => {
    const { id } = await newTunnel();
    const w = writer();
    await proxy.cut('refuse');
    try {
      const mark = logs.length;
      w.set(id, failing('during the outage'));
      w.set(id, { loginRefused: loginRefused('192.0.2.7') });
      await waitFor(
        () =>
          logs
            .slice(mark)
            .some((l) => l.msg === 'tunnel signals write failed; retrying' && l.tunnelId === id),
        20_000,
        { what: 'a failed attempt' },
      );
      w.set(id, failing('newest'));
      expect(w.backlog).toBe(1);
    } finally {
      await proxy.restore();
    }
    await waitFor(async () => (await stored(id))?.service?.message === 'newest', 15_000, {
      what: 'the signals written after the outage',
    });
    expect((await stored(id))?.loginRefused?.source).toBe('192.0.2.7');
    await w.flush(Date.now() + 5_000);
    expect(w.backlog).toBe(0);
  });

  it('writes nothing for a tunnel deleted meanwhile', async () => {
    const record = await newTunnel();
    await store.deleteTunnel(record);
    const w = writer();
    const mark = logs.length;
    w.set(record.id, failing('too late'));
    await w.flush(Date.now() + 5_000);
    expect(await stored(record.id)).toBeUndefined();
    expect(logs.slice(mark).some((l) => l.msg === 'tunnel signals dropped: tunnel deleted')).toBe(true);
  });

  it('holds at most maxPendingTunnels unwritten, and says so when it drops one', async () => {
    const tunnels = await Promise.all([newTunnel(), newTunnel(), newTunnel()]);
    const w = writer({ maxPendingTunnels: 2 });
    const mark = logs.length;
    await proxy.cut('blackhole');
    try {
      for (const t of tunnels) w.set(t.id, failing('held'));
      // Each loop took its tunnel's signals into a write that hangs: what waits now is new.
      for (const t of tunnels) w.set(t.id, failing('second'));
      expect(w.backlog).toBe(2);
      expect(
        logs
          .slice(mark)
          .filter((l) => l.msg === 'tunnel signals dropped: too many tunnels waiting to be written'),
      ).toHaveLength(1);
    } finally {
      await proxy.restore();
    }
    await w.flush(Date.now() + 15_000);
  });
});

function loginRefused(source: string): NonNullable<TunnelSignals['loginRefused']> {
  return {
    since: T(1),
    at: T(1),
    kind: 'wrong_key',
    reason: "key is not the tunnel's key",
    source,
    method: 'publickey',
    keyFingerprint: 'SHA256:x',
  };
}

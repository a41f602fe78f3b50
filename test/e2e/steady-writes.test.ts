/**
 * Issue 16, acceptance 7 (second half): steady-state DynamoDB writes per minute at 1,000 idle
 * tunnels stay within 2× those at 1 tunnel, with traffic flowing through the one the whole time
 * (per-tunnel bytes and connections are in the API, so they must not cost a write per byte or per
 * tunnel). The whole local stack (gateway heartbeats and traffic, the sweeper thread) talks to
 * DynamoDB Local through the bench's counting proxy; intervals are short so a few seconds hold
 * many of them. The bench's `dynamo-usage` figures measure the same at the default intervals.
 */

import { connect } from 'node:net';
import { BatchGetCommand, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type CountingProxy, startCountingProxy, writesIn } from '../../bench/support/dynamo-proxy';
import { type TunnelStateItem, WorkerHeartbeatSchema } from '../../shared/gateway-items';
import { evaluateStatus, type StatusSettings } from '../../shared/status';
import { StatusItemSchema } from '../../shared/status-items';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { tunnelItem } from '../../shared/store/dynamo-tunnel-store';
import { keys } from '../../shared/store/table';
import { Cleanups } from '../helpers/cleanups';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { putAll, reverseRecord } from '../helpers/gateway-sim';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import { holdReverseForward, hostKeyOf } from '../helpers/ssh-client';
import { waitFor } from '../helpers/wait-for';

/** Longer than a sweep over 1,000 tunnels here, so no heartbeat read at a sweep's start goes stale by its end. */
const HEARTBEAT_MS = 2_000;
const WINDOW_MS = 8_000;
const IDLE_TUNNELS = 999;
/** The stack's status settings (startTestStack's keepalive, our heartbeat). */
const SETTINGS: StatusSettings = {
  heartbeatIntervalMs: HEARTBEAT_MS,
  keepaliveIntervalMs: 5_000,
  downGraceMs: 120_000,
  bindHost: '127.0.0.1',
};

describe('steady-state DynamoDB writes (issue 16, acceptance 7)', () => {
  let proxy: CountingProxy;
  let stack: TestStack;
  let echo: EchoServer;
  const direct = createDynamoClients({ region: 'us-east-1', endpoint: inject('dynamoEndpoint') });
  const cleanups = new Cleanups();

  beforeAll(async () => {
    proxy = await startCountingProxy(inject('dynamoEndpoint'));
    cleanups.add(() => proxy.close());
    [stack, echo] = await Promise.all([
      startTestStack({
        portRange: '19520-19539',
        heartbeatIntervalMs: HEARTBEAT_MS,
        env: { DYNAMODB_ENDPOINT: proxy.endpoint, SWEEP_INTERVAL_MS: '500' },
      }),
      startEchoServer(),
    ]);
    cleanups.add(() => stack.stop());
    cleanups.add(() => echo.close());
    cleanups.add(async () => direct.client.destroy());
  });
  afterAll(() => cleanups.runAll());

  /** The tunnels of `ids` the sweeper has not recorded as up, with what it recorded instead. */
  const notRecordedUp = async (ids: string[]) => {
    const notUp: string[] = [];
    for (let i = 0; i < ids.length; i += 100) {
      const batch = ids.slice(i, i + 100);
      const out = await direct.doc.send(
        new BatchGetCommand({
          RequestItems: { [stack.tableName]: { Keys: batch.map((id) => keys.tunnelStatus(id)) } },
        }),
      );
      if (out.UnprocessedKeys && Object.keys(out.UnprocessedKeys).length > 0) return ['(unprocessed keys)'];
      const items = new Map(
        (out.Responses?.[stack.tableName] ?? []).map((item) => [
          String(item.pk),
          StatusItemSchema.safeParse(item).data,
        ]),
      );
      for (const id of batch) {
        const status = items.get(keys.tunnelStatus(id).pk);
        if (status?.state !== 'up')
          notUp.push(`${id} ${status?.state} ${status?.error?.code ?? ''} ${status?.error?.message ?? ''}`);
      }
    }
    return notUp;
  };
  /** Writes per minute over a window while `pump` keeps bytes flowing (and only then: it costs CPU). */
  const writesPerMinute = async (pump: () => void) => {
    const from = Date.now();
    const timer = setInterval(pump, 20);
    await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
    clearInterval(timer);
    const to = Date.now();
    return (writesIn(proxy.countsBetween(from, to)) * 60_000) / (to - from);
  };

  it('writes no more at 1,000 idle tunnels than at 1, however many bytes flow', async () => {
    // One tunnel, up, with bytes flowing through it without pause.
    const tunnel = await stack.createReverse({ host: '127.0.0.1', port: echo.port });
    if (!tunnel.reverse || !tunnel.privateKey) throw new Error('no generated reverse key');
    const forward = await holdReverseForward({
      port: stack.sshPort,
      hostKey: hostKeyOf(tunnel.reverse.knownHostsLine),
      username: tunnel.id,
      privateKey: tunnel.privateKey,
      bindPort: tunnel.reverse.remotePort,
      target: { host: '127.0.0.1', port: echo.port },
      timeoutMs: 10_000,
    });
    cleanups.add(async () => forward.close());
    const up = await stack.waitForTunnel(tunnel.id, (t) => t.connect !== null, 10_000);
    const traffic = connect(up.connect?.port ?? 0, up.connect?.host ?? '127.0.0.1');
    traffic.on('data', () => {});
    traffic.on('error', () => {});
    const pump = () => traffic.write(Buffer.alloc(16 * 1024, 1));
    cleanups.add(async () => traffic.destroy());
    await waitFor(async () => (await notRecordedUp([tunnel.id])).length === 0, 10_000, {
      what: 'the tunnel recorded up',
    });
    const t0 = Date.now();

    // Then 999 more, up through this gateway and idle, as the sweeper had recorded them (their
    // coming up was a transition, which writes by design; steady state is after it): the same window.
    // Judged against the live gateway's own heartbeat, as the sweeper judges them: up.
    const beat = await direct.doc.send(
      new GetCommand({ TableName: stack.tableName, Key: keys.worker(stack.gateway.workerId) }),
    );
    const heartbeat = WorkerHeartbeatSchema.parse(beat.Item);
    const now = new Date();
    // Connected through this gateway since it started (a loaded machine gets here within a second).
    const since = new Date(Math.max(now.getTime() - 1_000, Date.parse(heartbeat.startedAt))).toISOString();
    const records = Array.from({ length: IDLE_TUNNELS }, (_, n) => ({
      ...reverseRecord('default', n),
      createdAt: new Date(now.getTime() - 60_000).toISOString(),
    }));
    const items = records.flatMap((tunnel) => {
      const state: TunnelStateItem = {
        state: 'up',
        since,
        lastSeenAt: since,
        owner: stack.gateway.workerId,
        connId: `idle-${tunnel.id}`,
        connectedAt: since,
      };
      const evaluation = evaluateStatus({ tunnel, state, heartbeat, now, settings: SETTINGS });
      if (!evaluation.next) throw new Error('a new tunnel always has a record to write');
      const status = {
        ...evaluation.next,
        uptime: evaluation.ledger,
        version: 1,
        updatedAt: now.toISOString(),
        alerts: {},
      };
      return [
        { ...keys.tunnelState(tunnel.id), ...state },
        { ...keys.tunnelStatus(tunnel.id), ...status },
      ];
    });
    // Status items first, the tunnels last: the sweeper only ever finds tunnels it has nothing to do
    // for. Until their tunnel items exist it does not see them at all: they go in during the first
    // window (their writes are this test's, not the stack's, and do not pass the proxy).
    const [atOne] = await Promise.all([writesPerMinute(pump), putAll(direct.doc, stack.tableName, items)]);
    const logsBefore = stack.logs.length;
    await putAll(direct.doc, stack.tableName, records.map(tunnelItem));
    const writtenMs = Date.now() - t0;
    // The table's stream names each written tunnel to the sweeper, which evaluates it: nothing to
    // record, and none went anywhere.
    await waitFor(() => tunnelsSwept(stack.logs.slice(logsBefore)) >= IDLE_TUNNELS, 30_000, {
      what: `the sweeper's passes over the ${IDLE_TUNNELS} written tunnels`,
    });
    expect(await notRecordedUp(records.map((r) => r.id))).toEqual([]);
    console.info(
      `setup of ${IDLE_TUNNELS} idle tunnels: written in ${writtenMs} ms, swept by ${Date.now() - t0} ms`,
    );
    const atMany = await writesPerMinute(pump);
    const bytes = (await stack.getTunnel(tunnel.id)).status.traffic?.bytesToService ?? 0;

    console.info(
      `figure: DynamoDB writes/min at 1 tunnel ${Math.round(atOne)}, at ${IDLE_TUNNELS + 1} tunnels ${Math.round(atMany)} ` +
        `(heartbeat ${HEARTBEAT_MS} ms, ${WINDOW_MS / 1000} s windows, ${bytes} bytes through the busy tunnel)`,
    );
    expect(bytes).toBeGreaterThan(1_000_000); // it did flow, in both windows
    expect(atOne).toBeGreaterThan(0);
    expect(atMany).toBeLessThanOrEqual(2 * atOne);
  }, 120_000);
});

/** How many tunnels the sweeper's passes over written tunnels evaluated, by their log lines. */
function tunnelsSwept(lines: readonly Record<string, unknown>[]): number {
  return lines.reduce(
    (n, line) =>
      line.msg === 'sweep finished' && line.pass === 'tunnels' && typeof line.tunnels === 'number'
        ? n + line.tunnels
        : n,
    0,
  );
}

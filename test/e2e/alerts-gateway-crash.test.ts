/**
 * A gateway process killed with SIGKILL while holding 10 reverse tunnels (issue 5, acceptance 3).
 *
 * Three `npm start` processes (run as `node --import tsx local/main.ts`, so the pid is the stack)
 * share one DynamoDB table and one DATA_DIR (so one SSH host key): A holds the 10 customer
 * sessions; B runs beside it from the start, so its sweeper is alive when A dies; C replaces A
 * afterwards on A's SSH port. The customers run plain `reverse.commands.ssh`, which exits when its
 * connection dies: nothing reconnects behind the test's back, so the outcome is deterministic.
 * A dies without a word: its STATE items still say `up`; only its heartbeat going stale tells, and
 * B must show all 10 `down` (`worker_lost`) within the contract's bound and page each exactly once
 * after the grace. When the customers restart ssh against C, each tunnel pages `tunnel.up` once,
 * with B's and C's sweepers both running over the same outbox.
 * Why not the variant where autossh reconnects to another gateway and nothing pages: locally the
 * customers dial one port, not an NLB in front of several gateways, so they could only come back
 * once a process listens on A's port again, and whether that beats the grace would depend on how
 * fast a process starts. A reconnect within the grace is the flap case of alerts-e2e.test.ts.
 */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../local/free-port';
import type { Tunnel } from '../../shared/schemas';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { type AlertReceiver, startAlertReceiver } from '../helpers/alert-receiver';
import { ALERT_LATENCY_BOUND_MS, alertTimingEnv, DOWN_BOUND_MS } from '../helpers/alert-timing';
import { Customer, type CustomerProcess, requireTools, sshKeygen } from '../helpers/customer';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { apiClient } from '../helpers/http-api';
import { disposeStacks, killStack, type StartedStack, startStack } from '../helpers/local-stack';
import { waitForMoreSweeps } from '../helpers/sweeps';
import { waitFor, withTimeout } from '../helpers/wait-for';

const TUNNELS = 10;
/** Longer than the heartbeat staleness (3 s here), so the grace is not over before the loss can be seen. */
const GRACE_MS = 4_000;

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

describe('a gateway killed with SIGKILL while holding 10 reverse tunnels', () => {
  const endpoint = inject('dynamoEndpoint');
  const tableName = `test-${randomBytes(6).toString('hex')}`;
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;
  const secret = `whsec_${randomBytes(24).toString('base64url')}`;
  const stacks: StartedStack[] = [];
  let dataDir: string | undefined;
  let receiver: AlertReceiver | undefined;
  let echo: EchoServer | undefined;
  let customer: Customer | undefined;
  let env: Record<string, string> = {};
  let sshPortA = 0;

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    dataDir = await mkdtemp(join(tmpdir(), 'tk-crash-'));
    receiver = await startAlertReceiver(() => secret);
    echo = await startEchoServer();
    sshPortA = await freePort();
    env = {
      DATA_DIR: dataDir,
      DYNAMODB_ENDPOINT: endpoint,
      TABLE_NAME: tableName,
      BOOTSTRAP_API_KEY: apiKey,
      ADMIN_TOKEN: `tka_${randomBytes(24).toString('base64url')}`,
      TUNNEL_PORT_RANGE: '31000-31499',
      // Every process renders the commands for A's port, where C later takes over.
      PUBLIC_SSH_PORT: String(sshPortA),
      ...alertTimingEnv(GRACE_MS),
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_WEBHOOK_SECRET: secret,
      LOG_LEVEL: 'debug',
    };
  });

  afterAll(async () => {
    try {
      await customer?.dispose();
    } finally {
      await disposeStacks(stacks);
      const { client } = createDynamoClients({ region: 'us-east-1', endpoint });
      await client.send(new DeleteTableCommand({ TableName: tableName })).catch(() => {});
      client.destroy();
      await Promise.all([receiver?.close(), echo?.close()]);
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    }
  });

  /** Starts a stack process; one at a time, so first-start files in DATA_DIR are written once. */
  async function start(extra: Record<string, string> = {}): Promise<StartedStack> {
    const stack = await startStack({ ...env, ...extra }, 30_000, 'node');
    stacks.push(stack);
    return stack;
  }

  const workerIdOf = async (stack: StartedStack) =>
    String((await stack.waitForLog((l) => l.msg === 'ssh endpoint listening', 1_000)).workerId);

  it('B shows all 10 down (worker_lost) within the bound and pages each once; restarted against C, each pages up once', async () => {
    if (!receiver || !echo) throw new Error('beforeAll did not finish');
    const a = await start({ SSH_PORT: String(sshPortA) });
    const b = await start();
    const workerA = await workerIdOf(a);
    const apiA = apiClient(() => a.baseUrl, apiKey);
    const apiB = apiClient(() => b.baseUrl, apiKey);

    const tunnels: Tunnel[] = [];
    const keys: string[] = [];
    for (let i = 0; i < TUNNELS; i++) {
      const key = await sshKeygen('ed25519');
      tunnels.push(
        await apiA.createReverse(`crash-${i}`, { host: '127.0.0.1', port: echo.port }, key.publicKey),
      );
      keys.push(key.privateKey);
    }
    const ids = new Set(tunnels.map((t) => t.id));
    const commands = tunnels.map((t) => {
      if (!t.reverse) throw new Error(`tunnel ${t.id} has no reverse block`);
      return t.reverse.commands.ssh;
    });
    expect(commands.every((c) => c.includes(`-p ${sshPortA} `))).toBe(true);
    customer = await Customer.create();
    const owner = customer;
    await Promise.all(tunnels.map((t, i) => owner.installKey(t.id, keys[i] ?? '')));
    await owner.trustHosts(tunnels[0]?.reverse?.knownHostsLine ?? '');

    const allOf = async (accept: (t: Tunnel) => boolean) => {
      const listed = (await apiB.listTunnels()).filter((t) => ids.has(t.id));
      return listed.length === TUNNELS && listed.every(accept) ? listed : undefined;
    };
    const connectAll = async (): Promise<CustomerProcess[]> => {
      const sessions = commands.map((command) => owner.start(command));
      await waitFor(() => allOf(isUp), 30_000, {
        what: `all ${TUNNELS} tunnels up (${sessions.map((s) => s.stderr()).join(' | ')})`,
        intervalMs: 100,
      });
      return sessions;
    };
    const sweepLines = () => stacks.flatMap((s) => s.lines);
    const sweepersRecorded = (to: string) =>
      waitFor(
        () => {
          const seen = new Set(
            sweepLines()
              .filter((l) => l.msg === 'tunnel status changed' && l.to === to)
              .map((l) => String(l.tunnelId)),
          );
          return [...ids].every((id) => seen.has(id));
        },
        15_000,
        { what: `the sweepers recording all ${TUNNELS} tunnels ${to}` },
      );

    // A holds the 10 sessions; B sees them up through A's state and heartbeat.
    const first = await connectAll();
    await sweepersRecorded('up');
    const owners = new Set(
      a.lines.filter((l) => l.msg === 'reverse forward granted').map((l) => String(l.tunnelId)),
    );
    expect(owners).toEqual(ids);

    // SIGKILL: no state written, no listener closed politely; the kernel drops A's connections.
    const killedAt = await killStack(a, 'A');
    const down = await waitFor(() => allOf((t) => t.status.state === 'down'), DOWN_BOUND_MS + 10_000, {
      what: `all ${TUNNELS} tunnels down on B`,
      intervalMs: 50,
    });
    const downMs = Date.now() - killedAt;
    expect(downMs).toBeLessThanOrEqual(DOWN_BOUND_MS);
    for (const t of down) {
      expect(t.connect).toBeNull();
      expect(t.status.error?.code).toBe('worker_lost');
      expect(t.status.error?.message).toContain(workerA);
      // The loss dates from A's last heartbeat, before the kill.
      expect(Date.parse(t.status.since)).toBeLessThanOrEqual(killedAt);
    }
    // Plain ssh ends with its connection (autossh would retry): nobody is connected anywhere now.
    await withTimeout(Promise.all(first.map((s) => s.exited)), 15_000, 'customer ssh exits');

    // One tunnel.down per tunnel, after the grace, sent by B (A was dead).
    const downs = await receiver.waitForDelivered({ type: 'tunnel.down' }, TUNNELS, GRACE_MS + 20_000);
    const since = new Map(down.map((t) => [t.id, Date.parse(t.status.since)]));
    const lateness: number[] = [];
    for (const d of downs) {
      if (!d.alert) throw new Error('delivered without a body');
      const downSince = since.get(d.alert.tunnel.id) ?? Number.NaN;
      expect(d.alert.status.state).toBe('down');
      // By the end of the grace (longer than a reconnect takes), what is true is that no customer
      // came back: the page says so, and that the worker was lost.
      expect(d.alert.status.error?.code).toBe('customer_not_connected');
      expect(d.alert.status.error?.message).toMatch(/gateway worker holding the session was lost at/);
      expect(d.at - downSince).toBeGreaterThanOrEqual(GRACE_MS);
      lateness.push(d.at - downSince - GRACE_MS);
    }
    expect(Math.max(...lateness)).toBeLessThanOrEqual(ALERT_LATENCY_BOUND_MS);
    expect(new Set(downs.map((d) => d.alert?.tunnel.id))).toEqual(ids);
    // B's log line of an alert comes through its main thread, the webhook straight from the sweeper
    // thread, so the webhook may arrive first: a sweep finished after the deliveries orders them.
    await waitForMoreSweeps(b.lines, 2, 10_000);
    expect(b.lines.filter((l) => l.msg === 'tunnel alert' && l.type === 'tunnel.down')).toHaveLength(TUNNELS);

    // C replaces A on its port, with the same host key; the customers run their command again.
    const c = await start({ SSH_PORT: String(sshPortA) });
    const restartedAt = Date.now();
    await connectAll();
    const ups = await receiver.waitForDelivered({ type: 'tunnel.up' }, TUNNELS, 20_000);
    const lastUpMs = Math.max(...ups.map((u) => u.at)) - restartedAt;
    expect(new Set(ups.map((u) => u.alert?.tunnel.id))).toEqual(ids);

    // Both sweepers have looked several times since: still exactly one down and one up per tunnel.
    await Promise.all([waitForMoreSweeps(b.lines, 3, 15_000), waitForMoreSweeps(c.lines, 3, 15_000)]);
    expect(receiver.requests.every((r) => r.isSignatureValid && r.shapeError === undefined)).toBe(true);
    expect(receiver.requests.every((r) => r.answered === 200)).toBe(true);
    const perTunnel = new Map<string, string[]>();
    for (const r of receiver.delivered()) {
      const id = r.alert?.tunnel.id ?? '';
      perTunnel.set(id, [...(perTunnel.get(id) ?? []), r.alert?.type ?? '']);
    }
    expect(Object.fromEntries(perTunnel)).toEqual(
      Object.fromEntries([...ids].map((id) => [id, ['tunnel.down', 'tunnel.up']])),
    );
    expect(new Set(receiver.requests.map((r) => r.alertId)).size).toBe(2 * TUNNELS);
    console.info(
      `figure: gateway SIGKILL with ${TUNNELS} tunnels: all down on B ${downMs} ms after the kill ` +
        `(bound ${DOWN_BOUND_MS} ms); ${TUNNELS} × tunnel.down ${Math.min(...lateness)}–${Math.max(...lateness)} ms ` +
        `after the grace; ${TUNNELS} × tunnel.up within ${lastUpMs} ms of restarting ssh against C`,
    );
    // Three stacks, a kill, a grace, and ten customers reconnecting: well past the default timeout.
  }, 120_000);
});

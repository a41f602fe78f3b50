/**
 * Status and on-call alerts end to end (issue 5, acceptance 1, 2 and 7) on the local stack with
 * short intervals: a throwaway Unix user runs `reverse.commands.ssh` verbatim, the stack's sweeper
 * posts alerts to a real webhook receiver that verifies every signature with the shared secret.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_WORKSPACE_ID } from '../../local/stack';
import { EventListSchema, StatusSchema, type Tunnel } from '../../shared/schemas';
import { type AlertReceiver, startAlertReceiver } from '../helpers/alert-receiver';
import { ALERT_LATENCY_BOUND_MS, alertTimingEnv, DOWN_BOUND_MS } from '../helpers/alert-timing';
import { type Customer, customerFor, requireTools, sshKeygen } from '../helpers/customer';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import { withoutFigures } from '../helpers/status-figures';
import { waitForMoreSweeps } from '../helpers/sweeps';
import { waitFor, withTimeout } from '../helpers/wait-for';

/** Long enough that a kill, the sweeper noticing, and a restart fit well inside it (the flap test). */
const GRACE_MS = 4_000;

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;
const isDown = (t: Tunnel) => t.status.state === 'down';

describe('tunnel status and on-call alerts, end to end', () => {
  let stack: TestStack | undefined;
  let echo: EchoServer | undefined;
  let receiver: AlertReceiver | undefined;
  const customers: Customer[] = [];
  const secret = `whsec_${randomBytes(24).toString('base64url')}`;

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    receiver = await startAlertReceiver(() => secret);
    echo = await startEchoServer();
    stack = await startTestStack({
      portRange: '30000-30499',
      env: {
        ...alertTimingEnv(GRACE_MS),
        ALERT_WEBHOOK_URL: receiver.url,
        ALERT_WEBHOOK_SECRET: secret,
      },
    });
  });

  afterEach(async () => {
    await Promise.all(customers.splice(0).map((c) => c.dispose()));
  });

  afterAll(async () => {
    try {
      await stack?.stop();
    } finally {
      await Promise.all([echo?.close(), receiver?.close()]);
    }
  });

  const started = () => {
    if (!stack || !echo || !receiver) throw new Error('beforeAll did not finish');
    return { stack, echo, receiver };
  };

  /** Resolves once the sweeper has recorded the tunnel's transition to `to` (from its log line). */
  const sweeperRecorded = (tunnelId: string, to: string, timeoutMs = 5_000) =>
    started().stack.waitForLog(
      (l) => l.msg === 'tunnel status changed' && l.tunnelId === tunnelId && l.to === to,
      timeoutMs,
    );

  /** A reverse tunnel to the echo service, its customer's ssh connected and the sweeper aware of it. */
  async function connectedTunnel() {
    const { stack, echo } = started();
    const key = await sshKeygen('ed25519');
    const tunnel = await stack.createReverse({ host: '127.0.0.1', port: echo.port }, key.publicKey);
    if (!tunnel.reverse) throw new Error('no reverse block');
    const customer = await customerFor(tunnel, key.privateKey);
    customers.push(customer);
    const ssh = customer.start(tunnel.reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);
    await sweeperRecorded(tunnel.id, 'up');
    return { tunnel, reverse: tunnel.reverse, customer, ssh };
  }

  /** SIGKILL to the customer's ssh alone (as if it crashed); resolves with the kill time once it exited. */
  async function killSsh(customer: Customer, ssh: { exited: Promise<unknown> }): Promise<number> {
    const pid = await customer.pidOf('ssh');
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    await withTimeout(ssh.exited, 10_000, 'customer ssh exit after SIGKILL');
    return killedAt;
  }

  it('a killed customer ssh: down within the bound, one tunnel.down after the grace, one tunnel.up on recovery', async () => {
    const { stack, receiver } = started();
    const { tunnel, reverse, customer, ssh } = await connectedTunnel();

    const killedAt = await killSsh(customer, ssh);
    const down = await stack.waitForTunnel(tunnel.id, isDown, DOWN_BOUND_MS + 5_000);
    const downMs = Date.now() - killedAt;
    expect(downMs).toBeLessThanOrEqual(DOWN_BOUND_MS);
    expect(down.connect).toBeNull();
    expect(down.status.error?.code).toBe('customer_not_connected');
    expect(down.status.error?.hint).toMatch(/autossh/);
    const downSince = Date.parse(down.status.since);
    expect(downSince).toBeGreaterThanOrEqual(killedAt);

    const [downAlert] = await receiver.waitForDelivered(
      { tunnelId: tunnel.id, type: 'tunnel.down' },
      1,
      GRACE_MS + 15_000,
    );
    if (!downAlert?.alert) throw new Error('no tunnel.down delivered');
    const afterGraceMs = downAlert.at - (downSince + GRACE_MS);
    // Not before the grace: nothing at all reached the receiver for this tunnel earlier.
    for (const request of receiver.requestsFor(tunnel.id))
      expect(request.at).toBeGreaterThanOrEqual(downSince + GRACE_MS);
    expect(downAlert.at - killedAt).toBeGreaterThanOrEqual(GRACE_MS);
    expect(afterGraceMs).toBeLessThanOrEqual(ALERT_LATENCY_BOUND_MS);
    expect(downAlert.alert).toEqual({
      type: 'tunnel.down',
      tunnel: { id: tunnel.id, name: tunnel.name, workspaceId: DEFAULT_WORKSPACE_ID },
      status: withoutFigures(down.status),
      at: expect.any(String),
    });
    expect(Date.parse(downAlert.alert.at)).toBeGreaterThanOrEqual(downSince + GRACE_MS);
    expect(withoutFigures((await stack.getTunnel(tunnel.id)).status)).toEqual(withoutFigures(down.status));

    const restarted = customer.start(reverse.commands.ssh);
    const restartedAt = Date.now();
    const up = await stack.waitForTunnel(tunnel.id, isUp, 15_000, restarted.stderr);
    const [upAlert] = await receiver.waitForDelivered({ tunnelId: tunnel.id, type: 'tunnel.up' }, 1, 10_000);
    if (!upAlert?.alert) throw new Error('no tunnel.up delivered');
    expect(upAlert.alert).toEqual({
      type: 'tunnel.up',
      tunnel: { id: tunnel.id, name: tunnel.name, workspaceId: DEFAULT_WORKSPACE_ID },
      status: withoutFigures(up.status),
      at: expect.any(String),
    });

    // Exactly one of each: the sweeper has looked again several times since, and sent nothing more.
    await waitForMoreSweeps(stack.logs, 3, 10_000);
    const requests = receiver.requestsFor(tunnel.id);
    expect(requests.map((r) => `${r.answered} ${r.alert?.type}`)).toEqual([
      '200 tunnel.down',
      '200 tunnel.up',
    ]);
    expect(requests.every((r) => r.isSignatureValid && r.shapeError === undefined)).toBe(true);
    expect(new Set(requests.map((r) => r.alertId)).size).toBe(2);
    expect(stack.logsWith({ msg: 'tunnel alert', tunnelId: tunnel.id }).map((l) => l.type)).toEqual([
      'tunnel.down',
      'tunnel.up',
    ]);
    console.info(
      `figure: killed customer ssh shown down ${downMs} ms after SIGKILL (bound ${DOWN_BOUND_MS} ms); ` +
        `tunnel.down arrived ${downAlert.at - downSince} ms after the down (grace ${GRACE_MS} ms, ` +
        `+${afterGraceMs} ms); tunnel.up arrived ${upAlert.at - restartedAt} ms after ssh was restarted`,
    );
  });

  it('a flap shorter than the grace sends no alert, and the history shows both transitions', async () => {
    const { stack, receiver } = started();
    const { tunnel, reverse, customer, ssh } = await connectedTunnel();
    const firstUp = await stack.getTunnel(tunnel.id);

    await killSsh(customer, ssh);
    const down = await stack.waitForTunnel(tunnel.id, isDown, DOWN_BOUND_MS + 5_000);
    // The sweeper saw the down (the incident opened) before the customer came back.
    await sweeperRecorded(tunnel.id, 'down');
    const restarted = customer.start(reverse.commands.ssh);
    const up = await stack.waitForTunnel(tunnel.id, isUp, 15_000, restarted.stderr);
    const downSince = Date.parse(down.status.since);
    const flapMs = Date.parse(up.status.since) - downSince;
    // Otherwise this would not be a flap and an alert would be right.
    expect(flapMs).toBeLessThan(GRACE_MS);
    await sweeperRecorded(tunnel.id, 'up', 5_000);

    // Well past the grace, and the sweeper has looked several times since: still nothing sent.
    await waitFor(() => Date.now() >= downSince + 2 * GRACE_MS, 3 * GRACE_MS, { what: 'twice the grace' });
    await waitForMoreSweeps(stack.logs, 3, 10_000);
    expect(receiver.requestsFor(tunnel.id)).toEqual([]);
    expect(stack.logsWith({ msg: 'tunnel alert', tunnelId: tunnel.id })).toEqual([]);
    expect(stack.logsWith({ msg: 'alert delivery failed; will retry', tunnelId: tunnel.id })).toEqual([]);

    const res = await stack.api('GET', `/v1/tunnels/${tunnel.id}/events`);
    expect(res.status).toBe(200);
    const { items } = EventListSchema.strict().parse(res.json);
    expect(items.map((e) => `${e.from}->${e.to}`)).toEqual(['down->up', 'up->down', 'pending->up']);
    const [recovered, lost, connected] = items;
    expect(recovered).toEqual({
      at: up.status.since,
      from: 'down',
      to: 'up',
      downMs: Date.parse(up.status.since) - Date.parse(down.status.since),
    });
    expect(lost).toEqual({ at: down.status.since, from: 'up', to: 'down', error: down.status.error });
    expect(lost?.error?.code).toBe('customer_not_connected');
    expect(connected).toEqual({ at: firstUp.status.since, from: 'pending', to: 'up' });
    const times = items.map((e) => Date.parse(e.at));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    console.info(`figure: flap of ${flapMs} ms (grace ${GRACE_MS} ms) sent no alert`);
  });

  it('100 sequential status polls with If-None-Match on a steady up tunnel all answer 304', async () => {
    const { stack } = started();
    const { tunnel, customer, ssh } = await connectedTunnel();
    const poll = (etag?: string) =>
      fetch(`${stack.baseUrl}/v1/tunnels/${tunnel.id}/status`, {
        headers: { Authorization: `Bearer ${stack.apiKey}`, ...(etag ? { 'If-None-Match': etag } : {}) },
      });

    const first = await poll();
    expect(first.status).toBe(200);
    const etag = first.headers.get('etag');
    if (!etag) throw new Error('no ETag on GET status');
    expect(StatusSchema.parse(await first.json()).state).toBe('up');

    const answers: { status: number; etag: string | null; body: string; ms: number }[] = [];
    for (let i = 0; i < 100; i++) {
      const startedAt = performance.now();
      const res = await poll(etag);
      const body = await res.text();
      answers.push({
        status: res.status,
        etag: res.headers.get('etag'),
        body,
        ms: performance.now() - startedAt,
      });
    }
    expect(answers.map((a) => a.status)).toEqual(Array(100).fill(304));
    expect(new Set(answers.map((a) => a.etag))).toEqual(new Set([etag]));
    expect(answers.every((a) => a.body === '')).toBe(true);

    // The tag follows the status: once the tunnel is down the same poll gets the new status.
    await killSsh(customer, ssh);
    await stack.waitForTunnel(tunnel.id, isDown, DOWN_BOUND_MS + 5_000);
    const changed = await poll(etag);
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
    expect(StatusSchema.parse(await changed.json()).state).toBe('down');

    const ms = answers.map((a) => a.ms).sort((a, b) => a - b);
    console.info(
      `figure: 100 conditional status polls: all 304, median ${ms[49]?.toFixed(2)} ms, ` +
        `max ${ms[99]?.toFixed(2)} ms`,
    );
  });
});

/**
 * Reverse-tunnel sessions over time (issue 3, acceptance 5 and 6): a second login takes over from
 * the first without connections failing for a second or more, and a customer whose ssh is frozen
 * (SIGSTOP) is noticed by keepalives and shown `down` within the contract's bound.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../shared/schemas';
import { type Customer, requireTools, reverseTunnelWithCustomer } from '../helpers/customer';
import { type EchoServer, echoProbe, startEchoServer } from '../helpers/echo';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import { waitFor, withTimeout } from '../helpers/wait-for';

const KEEPALIVE_MS = 1_000;
const HEARTBEAT_MS = 1_000;
/** CONTRACT.md, Status: down within SSH_KEEPALIVE_INTERVAL_MS × 3 + HEARTBEAT_INTERVAL_MS. */
const DOWN_BOUND_MS = KEEPALIVE_MS * 3 + HEARTBEAT_MS;

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

interface Probe {
  start: number;
  end: number;
  ok: boolean;
}

/** Longest stretch during which connections failed: first failure's start to the next success's start. */
function longestFailureWindow(probes: Probe[]): number {
  let longest = 0;
  let runStart: number | undefined;
  for (const probe of [...probes].sort((a, b) => a.start - b.start)) {
    if (!probe.ok) runStart ??= probe.start;
    else if (runStart !== undefined) {
      longest = Math.max(longest, probe.start - runStart);
      runStart = undefined;
    }
  }
  return runStart === undefined ? longest : Number.POSITIVE_INFINITY; // still failing at the end
}

describe('reverse-tunnel takeover and silent customers', () => {
  let stack: TestStack;
  let echo: EchoServer;
  const customers: Customer[] = [];

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    stack = await startTestStack({
      portRange: '23000-23999',
      keepaliveIntervalMs: KEEPALIVE_MS,
      heartbeatIntervalMs: HEARTBEAT_MS,
    });
    echo = await startEchoServer();
  });

  afterEach(async () => {
    await Promise.all(customers.splice(0).map((c) => c.dispose()));
  });

  afterAll(async () => {
    await echo?.close();
    await stack?.stop();
  });

  async function tunnelWithCustomer() {
    const made = await reverseTunnelWithCustomer(stack.createReverse, { host: '127.0.0.1', port: echo.port });
    customers.push(made.customer);
    return made;
  }

  it('a second ssh -R takes over: it works, the first exits, no connection fails for 1 s or more', async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer();
    const first = customer.start(reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, first.stderr);

    // Connections through `connect` back to back, each a full echo exchange, for the whole takeover.
    const probes: Probe[] = [];
    let probing = true;
    // Four probers at once, so connections are in flight at every moment of the takeover.
    const prober = Promise.all(
      Array.from({ length: 4 }, async () => {
        const until = Date.now() + 60_000;
        while (probing && probes.length < 50_000 && Date.now() < until) {
          const start = performance.now();
          const ok = await echoProbe('127.0.0.1', reverse.remotePort, 2_000);
          probes.push({ start, end: performance.now(), ok });
        }
      }),
    );
    const successes = () => probes.filter((p) => p.ok).length;
    await waitFor(() => successes() >= 20, 10_000, { what: '20 connections through the first session' });

    const takeoverStart = performance.now();
    const second = customer.start(reverse.commands.ssh);
    const firstExit = await withTimeout(first.exited, 10_000, 'first ssh exit after the takeover');
    const firstExitAt = performance.now();
    const afterExit = successes();
    await waitFor(() => successes() >= afterExit + 50, 10_000, {
      what: '50 connections after the first exited',
    });
    probing = false;
    await prober;

    const window = longestFailureWindow(probes);
    const during = probes.filter((p) => p.start >= takeoverStart && p.start <= firstExitAt);
    console.info(
      `figure: takeover: ${probes.length} connections, ${probes.filter((p) => !p.ok).length} failed, ` +
        `longest failure window ${window.toFixed(1)} ms, first ssh exited ${(firstExitAt - takeoverStart).toFixed(0)} ms ` +
        `after the second started (${during.length} connections meanwhile)`,
    );
    expect(during.length).toBeGreaterThan(0);
    expect(window).toBeLessThan(1_000);

    expect(firstExit.code).toBe(255);
    expect(second.exit()).toBeUndefined();
    const takeover = stack.logsWith({
      msg: 'reverse tunnel taken over by a newer login',
      tunnelId: tunnel.id,
    });
    expect(takeover).toHaveLength(1);
    const up = await stack.waitForTunnel(tunnel.id, isUp, 5_000, second.stderr);
    expect(up.connect).toEqual({ host: '127.0.0.1', port: reverse.remotePort });
    // The state names the second connection, and the first one's end wrote no `down` over it.
    const written = stack.logsWith({ msg: 'tunnel state written', tunnelId: tunnel.id });
    expect(written.at(-1)).toMatchObject({ state: 'up', connId: takeover[0]?.connId });
    expect(written.filter((l) => l.state === 'down')).toEqual([]);
    expect(await echoProbe('127.0.0.1', reverse.remotePort, 2_000)).toBe(true);
  });

  it('a frozen customer ssh (SIGSTOP) shows down with customer_timeout within keepalive × 3 + heartbeat', async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer();
    const ssh = customer.start(reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);
    const pid = await customer.pidOf('ssh');

    const stoppedAt = Date.now();
    process.kill(pid, 'SIGSTOP');
    const down = await stack.waitForTunnel(
      tunnel.id,
      (t) => t.status.state === 'down',
      DOWN_BOUND_MS + 10_000,
    );
    const downMs = Date.now() - stoppedAt;
    console.info(`figure: frozen customer shown down ${downMs} ms after SIGSTOP (bound ${DOWN_BOUND_MS} ms)`);
    expect(downMs).toBeLessThanOrEqual(DOWN_BOUND_MS);
    expect(down.connect).toBeNull();
    expect(down.status.error?.code).toBe('customer_timeout');
    expect(down.status.error?.message).toContain('127.0.0.1');
    expect(down.status.error?.hint).toMatch(/suspended/);
    expect(stack.gateway.reverseTunnelCount).toBe(0);
    expect(await echoProbe('127.0.0.1', reverse.remotePort, 2_000)).toBe(false);

    // Thawed, the customer's ssh finds its connection gone and exits (autossh would reconnect).
    process.kill(pid, 'SIGCONT');
    const exit = await withTimeout(ssh.exited, 10_000, 'ssh exit after SIGCONT');
    expect(exit.code).toBe(255);
  });
});

/**
 * MAX_SESSIONS_PER_TUNNEL (CONTRACT.md, Extensions) on the reverse-tunnel endpoint, with Debian's
 * OpenSSH: the 5th logged-in session of one tunnel is refused with a reason ssh prints and our log
 * states, and sessions taken over by a newer login stop counting at once, so a customer whose
 * autossh keeps reconnecting through a flaky network never locks itself out.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../shared/schemas';
import {
  type Customer,
  type CustomerProcess,
  requireTools,
  reverseTunnelWithCustomer,
} from '../helpers/customer';
import { type EchoServer, echoProbe, startEchoServer } from '../helpers/echo';
import { type LogLine, startTestStack, type TestStack } from '../helpers/gateway-stack';
import { waitFor, withTimeout } from '../helpers/wait-for';

const MAX_SESSIONS = 4;
type Reverse = NonNullable<Tunnel['reverse']>;

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;
/** The tunnel's command logging in without asking for the forward: a session that takes nothing over. */
const loginOnly = (r: Reverse) => r.commands.ssh.replace(/ -R \S+/, '');

describe('sessions per tunnel', () => {
  let stack: TestStack;
  let echo: EchoServer;
  const customers: Customer[] = [];

  const logsSince = (mark: number, fields: Record<string, unknown>): LogLine[] =>
    stack.logs.slice(mark).filter((line) => Object.entries(fields).every(([k, v]) => line[k] === v));

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    stack = await startTestStack({
      portRange: '12100-12199',
      env: { MAX_SESSIONS_PER_TUNNEL: String(MAX_SESSIONS) },
    });
    echo = await startEchoServer();
  });

  afterEach(async () => {
    await Promise.all(customers.splice(0).map((c) => c.dispose()));
    await waitFor(() => stack.gateway.connectionCount === 0, 20_000, { what: 'no SSH connection left' });
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

  /** Starts `command` and waits until the gateway logged its login in. */
  async function loggedIn(customer: Customer, tunnelId: string, command: string): Promise<CustomerProcess> {
    const before = stack.logsWith({ msg: 'ssh login accepted', tunnelId }).length;
    const ssh = customer.start(command);
    await waitFor(() => stack.logsWith({ msg: 'ssh login accepted', tunnelId }).length > before, 10_000, {
      what: `login ${before + 1} of ${tunnelId} (ssh said: ${ssh.stderr().trim()})`,
    });
    return ssh;
  }

  it(`refuses the ${MAX_SESSIONS + 1}th session of a tunnel with a reason ssh prints, and admits again once one ends`, async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer();
    const held: CustomerProcess[] = [];
    for (let i = 0; i < MAX_SESSIONS; i++) held.push(await loggedIn(customer, tunnel.id, loginOnly(reverse)));
    const mark = stack.logs.length;

    const fifth = await customer.exec(loginOnly(reverse), 15_000);
    expect(fifth.code).toBe(255);
    expect(fifth.stderr).toMatch(
      new RegExp(
        `Received disconnect from 127\\.0\\.0\\.1 port ${stack.sshPort}:12: Too many sessions of tunnel ` +
          `${tunnel.id} at once \\(at most ${MAX_SESSIONS} on this endpoint\\): another copy of this ` +
          "tunnel's ssh or autossh may be running somewhere",
      ),
    );
    expect(fifth.stderr).not.toContain('Permission denied');
    const refused = logsSince(mark, { msg: 'ssh login refused', tunnelId: tunnel.id });
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({
      reason: `too many sessions of this tunnel at once (${MAX_SESSIONS}, the limit)`,
      disconnectCode: 12,
      sessions: MAX_SESSIONS,
    });
    expect(logsSince(mark, { msg: 'ssh login accepted' })).toEqual([]);
    // The four are untouched.
    expect(held.map((p) => p.exit())).toEqual([undefined, undefined, undefined, undefined]);

    // One ends: a new login gets its place, and that one with the forward brings the tunnel up.
    expect(stack.gateway.sessionCount(tunnel.id)).toBe(MAX_SESSIONS);
    const [first] = held;
    first?.kill();
    await first?.exited;
    await waitFor(() => stack.gateway.sessionCount(tunnel.id) === MAX_SESSIONS - 1, 5_000, {
      what: 'the ended session no longer counted',
    });
    const withForward = customer.start(reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, withForward.stderr);
    expect(await echoProbe('127.0.0.1', reverse.remotePort, 5_000)).toBe(true);
    expect(logsSince(mark, { msg: 'ssh login refused', tunnelId: tunnel.id })).toHaveLength(1);
  }, 60_000);

  it('never counts sessions taken over: six reconnects whose old sessions hang are all let in', async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer();
    const mark = stack.logs.length;
    const frozen: CustomerProcess[] = [];
    const frozenPids = new Set<number>();
    for (let round = 1; round <= MAX_SESSIONS + 2; round++) {
      const ssh = await loggedIn(customer, tunnel.id, reverse.commands.ssh);
      await waitFor(
        () => logsSince(mark, { msg: 'reverse forward granted', tunnelId: tunnel.id }).length === round,
        10_000,
        { what: `forward of round ${round}` },
      );
      expect(await echoProbe('127.0.0.1', reverse.remotePort, 5_000)).toBe(true);
      // As after a network blip: the old ssh neither answers nor closes; its TCP connection stays
      // until keepalives give up on it, long after the next login took over.
      const pid = await waitFor(
        async () => (await customer.pids('ssh')).find((p) => !frozenPids.has(p)),
        5_000,
        { what: `the ssh of round ${round}` },
      );
      process.kill(pid, 'SIGSTOP');
      frozenPids.add(pid);
      frozen.push(ssh);
    }
    expect(logsSince(mark, { msg: 'ssh login refused' })).toEqual([]);
    expect(logsSince(mark, { msg: 'ssh login accepted', tunnelId: tunnel.id })).toHaveLength(
      MAX_SESSIONS + 2,
    );
    expect(
      logsSince(mark, { msg: 'reverse tunnel taken over by a newer login', tunnelId: tunnel.id }),
    ).toHaveLength(MAX_SESSIONS + 1);
    // Only the newest counts, while the taken-over ones still hold their connections.
    expect(stack.gateway.sessionCount(tunnel.id)).toBe(1);
    expect(stack.gateway.connectionCount).toBeGreaterThan(1);
    for (const ssh of frozen) ssh.kill();
    await withTimeout(Promise.all(frozen.map((p) => p.exited)), 10_000, 'frozen ssh killed');
  }, 60_000);
});

/**
 * Reverse tunnels end to end (issue 3, acceptance 1, 2, 3 and 9): the API creates the tunnel, a
 * throwaway Unix user runs `reverse.commands.ssh` / `autossh` verbatim with Debian's OpenSSH, and
 * the platform side reaches a local echo service or a real PostgreSQL through `connect`.
 */
import { execFile } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../shared/schemas';
import { type Customer, customerFor, requireTools, sshKeygen } from '../helpers/customer';
import { type EchoServer, echoProbe, echoRoundTrip, startEchoServer } from '../helpers/echo';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import { type Postgres, requirePostgres, startPostgres } from '../helpers/postgres';
import { waitFor, withTimeout } from '../helpers/wait-for';

const MiB = 1024 * 1024;
const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

/** True when nothing listens on 127.0.0.1:port any more and the port can be bound again. */
async function portIsFree(port: number): Promise<boolean> {
  const refused = await new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
  if (!refused) return false;
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

describe('reverse tunnels with OpenSSH, end to end', () => {
  let stack: TestStack;
  let echo: EchoServer;
  const customers: Customer[] = [];
  let postgres: Postgres | undefined;

  beforeAll(async () => {
    requireTools('ssh', 'autossh', 'ssh-keygen', 'psql', 'runuser', 'useradd', 'userdel', 'pgrep');
    requirePostgres();
    stack = await startTestStack({ portRange: '21000-21999', heartbeatIntervalMs: 1_000 });
    echo = await startEchoServer();
  });

  afterEach(async () => {
    const disposing = customers.splice(0).map((c) => c.dispose());
    if (postgres) disposing.push(postgres.stop());
    postgres = undefined;
    await Promise.all(disposing);
  });

  afterAll(async () => {
    await echo?.close();
    await stack?.stop();
  });

  /** Creates a reverse tunnel to `service` and a customer holding its key. */
  async function tunnelWithCustomer(
    service: { host: string; port: number },
    keyFrom: 'customer' | 'generated',
  ) {
    const own = keyFrom === 'customer' ? await sshKeygen('ed25519') : undefined;
    const tunnel = await stack.createReverse(service, own?.publicKey);
    const privateKey = own?.privateKey ?? tunnel.privateKey;
    if (!privateKey || !tunnel.reverse) throw new Error('tunnel without key or reverse block');
    const customer = await customerFor(tunnel, privateKey);
    customers.push(customer);
    return { tunnel, reverse: tunnel.reverse, customer };
  }

  it("moves 64 MiB both ways through connect with the customer's own key and reverse.commands.ssh verbatim", async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer(
      { host: '127.0.0.1', port: echo.port },
      'customer',
    );
    expect(tunnel.status.state).toBe('pending');
    expect(tunnel.connect).toBeNull();
    expect(tunnel.privateKey).toBeUndefined();

    const started = Date.now();
    const ssh = customer.start(reverse.commands.ssh);
    const up = await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);
    const upMs = Date.now() - started;
    expect(up.connect).toEqual({ host: '127.0.0.1', port: reverse.remotePort });
    expect(up.status.error).toBeUndefined();

    const trip = await echoRoundTrip('127.0.0.1', reverse.remotePort, 64 * MiB, 90_000);
    expect(trip.sentBytes).toBe(64 * MiB);
    expect(trip.receivedBytes).toBe(64 * MiB);
    expect(trip.receivedSha256).toBe(trip.sentSha256);

    // Still the same session, still up; our log names the key it logged in with.
    expect(ssh.exit()).toBeUndefined();
    expect((await stack.getTunnel(tunnel.id)).status.state).toBe('up');
    const login = stack.logsWith({ msg: 'ssh login accepted', tunnelId: tunnel.id });
    expect(login).toHaveLength(1);
    expect(login[0]?.keyFingerprint).toBe(tunnel.publicKeyFingerprint);
    console.info(
      `figure: reverse up ${upMs} ms after ssh start; 64 MiB echoed in ${Math.round(trip.ms)} ms ` +
        `(${((2 * 64) / (trip.ms / 1000)).toFixed(0)} MiB/s both directions together)`,
    );
  });

  it('works with a generated key under reverse.commands.autossh, which reconnects after its ssh is killed', async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer(
      { host: '127.0.0.1', port: echo.port },
      'generated',
    );
    expect(tunnel.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
    expect((await stack.getTunnel(tunnel.id)).privateKey).toBeUndefined(); // shown once, never stored

    const autossh = customer.start(reverse.commands.autossh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, autossh.stderr);
    const first = await echoRoundTrip('127.0.0.1', reverse.remotePort, 4 * MiB, 30_000);
    expect({ bytes: first.receivedBytes, sha: first.receivedSha256 }).toEqual({
      bytes: 4 * MiB,
      sha: first.sentSha256,
    });

    for (let round = 1; round <= 2; round++) {
      const grantedBefore = stack.logsWith({ msg: 'reverse forward granted', tunnelId: tunnel.id }).length;
      const sshPid = await customer.pidOf('ssh');
      const killedAt = Date.now();
      process.kill(sshPid, 'SIGKILL');
      await waitFor(
        async () => {
          const pids = await customer.pids('ssh');
          return pids.length === 1 && pids[0] !== sshPid;
        },
        15_000,
        { what: 'autossh restarted ssh' },
      );
      await waitFor(
        () => stack.logsWith({ msg: 'reverse forward granted', tunnelId: tunnel.id }).length > grantedBefore,
        15_000,
        { what: 'the restarted ssh holding the forward' },
      );
      await stack.waitForTunnel(tunnel.id, isUp, 10_000, autossh.stderr);
      const again = await echoRoundTrip('127.0.0.1', reverse.remotePort, 4 * MiB, 30_000);
      expect({ bytes: again.receivedBytes, sha: again.receivedSha256 }).toEqual({
        bytes: 4 * MiB,
        sha: again.sentSha256,
      });
      console.info(
        `figure: autossh round ${round}: data flows again ${Date.now() - killedAt} ms after the kill`,
      );
    }
    expect(autossh.exit()).toBeUndefined();
    expect(autossh.stderr()).not.toMatch(/remote port forwarding failed/i);
    expect(stack.logsWith({ msg: 'ssh request refused', tunnelId: tunnel.id })).toEqual([]);
  });

  it("reaches a real PostgreSQL through the tunnel with Debian's psql", async () => {
    postgres = await startPostgres();
    const { tunnel, reverse, customer } = await tunnelWithCustomer(
      { host: '127.0.0.1', port: postgres.port },
      'customer',
    );
    const ssh = customer.start(reverse.commands.ssh);
    const up = await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);
    if (!up.connect) throw new Error('no connect');
    const query =
      "select 'via-tunnel', inet_server_port(), count(*), sum(i) from generate_series(1, 100000) as i";
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'psql',
        [
          '-X',
          '-A',
          '-t',
          '-h',
          up.connect?.host ?? '',
          '-p',
          String(up.connect?.port),
          '-U',
          'postgres',
          '-d',
          'postgres',
          '-c',
          query,
        ],
        { timeout: 20_000, env: { PATH: process.env.PATH, PGCONNECT_TIMEOUT: '10', PGSSLMODE: 'disable' } },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    // inet_server_port() is the real server's port: the query went through the tunnel to it.
    expect(result.stdout.trim()).toBe(`via-tunnel|${postgres.port}|100000|5000050000`);
    expect(up.connect.port).not.toBe(postgres.port);
  });

  it('deleting a connected tunnel ends its ssh within 5 s and frees its port', async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer(
      { host: '127.0.0.1', port: echo.port },
      'customer',
    );
    const ssh = customer.start(reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);
    expect(await echoProbe('127.0.0.1', reverse.remotePort, 5_000)).toBe(true);

    const deletedAt = Date.now();
    expect((await stack.api('DELETE', `/v1/tunnels/${tunnel.id}`)).status).toBe(204);
    const exit = await withTimeout(ssh.exited, 5_000, 'ssh exit after the tunnel was deleted');
    const exitMs = exit.at - deletedAt;
    expect(exitMs).toBeLessThan(5_000);
    expect(exit.code).toBe(255);
    expect(ssh.stderr()).toMatch(/Disconnected from 127\.0\.0\.1 port \d+/);
    await waitFor(() => portIsFree(reverse.remotePort), 1_000, { what: `port ${reverse.remotePort} free` });
    expect((await stack.api('GET', `/v1/tunnels/${tunnel.id}`)).status).toBe(404);
    expect(stack.logsWith({ msg: 'closing reverse tunnel session', tunnelId: tunnel.id })[0]?.reason).toBe(
      'tunnel deleted',
    );
    expect(stack.gateway.reverseTunnelCount).toBe(0);
    console.info(`figure: ssh exited ${exitMs} ms after DELETE`);
  });

  it('disabling a connected tunnel ends its ssh within 5 s, shows disabled, and refuses the next login', async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer(
      { host: '127.0.0.1', port: echo.port },
      'customer',
    );
    const ssh = customer.start(reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);

    const disabledAt = Date.now();
    expect((await stack.api('PATCH', `/v1/tunnels/${tunnel.id}`, { enabled: false })).status).toBe(200);
    const exit = await withTimeout(ssh.exited, 5_000, 'ssh exit after the tunnel was disabled');
    expect(exit.at - disabledAt).toBeLessThan(5_000);
    await waitFor(() => portIsFree(reverse.remotePort), 1_000, { what: `port ${reverse.remotePort} free` });
    const disabled = await stack.getTunnel(tunnel.id);
    expect(disabled.status.state).toBe('disabled');
    expect(disabled.connect).toBeNull();

    const retry = await customer.exec(reverse.commands.ssh, 15_000);
    expect(retry.code).toBe(255);
    expect(retry.stderr).toMatch(/Permission denied \(publickey\)/);
    expect(stack.logsWith({ msg: 'ssh login refused', user: tunnel.id }).map((l) => l.reason)).toContain(
      'tunnel is disabled',
    );
  });
});

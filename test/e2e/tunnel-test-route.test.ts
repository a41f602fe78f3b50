import { createServer, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../local/free-port';
import { TestResultSchema } from '../../shared/schemas';
import { Bastion } from '../helpers/bastion';
import { type Customer, customerFor, requireTools } from '../helpers/customer';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import { type Postgres, requirePostgres, startPostgres } from '../helpers/postgres';

/**
 * POST /v1/tunnels/{id}/test end to end: the API asks the gateway worker (through its control
 * endpoint) to run each step; the first failing one carries the status code and a hint.
 */
describe('POST /v1/tunnels/{id}/test', () => {
  let stack: TestStack;
  let bastion: Bastion;
  let postgres: Postgres;
  let echo: EchoServer;
  let mysqlLike: Server;
  let mysqlPort: number;
  const customers: Customer[] = [];

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd');
    requirePostgres();
    [stack, bastion, postgres, echo] = await Promise.all([
      startTestStack({
        portRange: '12200-12699',
        heartbeatIntervalMs: 500,
        env: { POOL_POLL_INTERVAL_MS: '300', RECONNECT_INITIAL_MS: '200', RECONNECT_MAX_MS: '1000' },
      }),
      Bastion.start(),
      startPostgres(),
      startEchoServer(),
    ]);
    // Speaks first like MySQL: a v10 handshake packet naming the server version.
    mysqlLike = createServer((socket) => {
      const body = Buffer.concat([
        Buffer.from([10]),
        Buffer.from('8.0.36-test\0', 'latin1'),
        Buffer.alloc(20),
      ]);
      const header = Buffer.from([body.length & 0xff, (body.length >> 8) & 0xff, 0, 0]);
      socket.end(Buffer.concat([header, body]));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => mysqlLike.listen(0, '127.0.0.1', resolve));
    mysqlPort = (mysqlLike.address() as { port: number }).port;
  }, 60_000);

  afterEach(async () => {
    for (const customer of customers.splice(0)) await customer.dispose();
  });

  afterAll(async () => {
    mysqlLike?.close();
    await Promise.allSettled([stack?.stop(), bastion?.dispose(), postgres?.stop(), echo?.close()]);
  });

  const runTest = async (id: string) => {
    const res = await stack.api('POST', `/v1/tunnels/${id}/test`);
    expect(res.status).toBe(200);
    return TestResultSchema.strict().parse(res.json);
  };

  const standard = async (service: { host: string; port: number }, ssh: Record<string, unknown> = {}) => {
    const res = await stack.api('POST', '/v1/tunnels', {
      type: 'standard',
      name: 'test-route',
      ssh: { host: '127.0.0.1', port: bastion.port, user: bastion.user, ...ssh },
      service,
    });
    expect(res.status).toBe(201);
    return res.json as { id: string; publicKey: string; authorizedKeysLine: string };
  };

  it('a working standard tunnel to PostgreSQL passes every step, and the probe speaks PostgreSQL', async () => {
    const tunnel = await standard({ host: '127.0.0.1', port: postgres.port });
    await bastion.setAuthorizedKeys([tunnel.publicKey]);
    const result = await runTest(tunnel.id);
    expect(result.checks.map((c) => [c.name, c.ok])).toEqual([
      ['configured', true],
      ['resolve', true],
      ['tcp', true],
      ['ssh_handshake', true],
      ['auth', true],
      ['channel', true],
      ['probe', true],
    ]);
    expect(result.ok).toBe(true);
    for (const check of result.checks) expect(check.ms).toBeGreaterThanOrEqual(0);
  });

  it('probes PostgreSQL and MySQL by protocol on their standard ports', async () => {
    // The services listen on OS-chosen ports; map them to 5432/3306 on another loopback address
    // so the probe picks its protocol by port, as it does for customers.
    const relays = await Promise.all([
      relay('127.0.0.10', 5432, postgres.port),
      relay('127.0.0.10', 3306, mysqlPort),
    ]);
    try {
      const pg = await standard({ host: '127.0.0.10', port: 5432 });
      const my = await standard({ host: '127.0.0.10', port: 3306 });
      await bastion.setAuthorizedKeys([pg.publicKey, my.publicKey]);
      const [pgResult, myResult] = [await runTest(pg.id), await runTest(my.id)];
      expect(pgResult.checks.at(-1)).toMatchObject({
        name: 'probe',
        ok: true,
        message: expect.stringMatching(/PostgreSQL answered/),
      });
      expect(myResult.checks.at(-1)).toMatchObject({
        name: 'probe',
        ok: true,
        message: 'MySQL greeting from server 8.0.36-test',
      });
    } finally {
      for (const r of relays) r.close();
    }
  });

  it.each([
    ['our key is not installed', 'auth', 'auth_failed'],
    ['the bastion is not listening', 'tcp', 'ssh_refused'],
    ['the service port is closed behind the bastion', 'channel', 'service_unreachable'],
    ['permitopen names another port', 'channel', 'forward_denied'],
    ['the pinned host key differs', 'ssh_handshake', 'host_key_mismatch'],
    ['the bastion name does not resolve', 'resolve', 'ssh_dns_failed'],
  ] as const)('when %s, the %s step fails with %s and a hint', async (what, step, code) => {
    let ssh: Record<string, unknown> = {};
    let service = { host: '127.0.0.1', port: echo.port };
    if (what === 'the bastion is not listening') ssh = { port: await freePort() };
    if (what === 'the service port is closed behind the bastion')
      service = { host: '127.0.0.1', port: await freePort() };
    if (what === 'the pinned host key differs') ssh = { hostKeyFingerprint: `SHA256:${'B'.repeat(43)}` };
    if (what === 'the bastion name does not resolve') ssh = { host: 'bastion.does-not-exist.invalid' };
    const tunnel = await standard(service, ssh);
    if (what === 'permitopen names another port') {
      await bastion.setAuthorizedKeys([
        `restrict,port-forwarding,permitopen="127.0.0.1:1" ${tunnel.publicKey}`,
      ]);
    } else if (what === 'our key is not installed') {
      await bastion.setAuthorizedKeys([]);
    } else {
      await bastion.setAuthorizedKeys([tunnel.publicKey]);
    }
    const result = await runTest(tunnel.id);
    expect(result.ok).toBe(false);
    const failed = result.checks.filter((c) => !c.ok);
    expect(failed).toHaveLength(1);
    expect(result.checks.at(-1)).toMatchObject({ name: step, ok: false, code, hint: expect.any(String) });
    expect(result.checks.slice(0, -1).every((c) => c.ok)).toBe(true);
  });

  it('a reverse tunnel: connected customer passes; with the customer ssh stopped it says the customer is not connected', async () => {
    const tunnel = await stack.createReverse({ host: '127.0.0.1', port: echo.port });
    if (!tunnel.privateKey || !tunnel.reverse) throw new Error('expected a generated key');
    const customer = await customerFor(tunnel, tunnel.privateKey);
    customers.push(customer);
    const ssh = customer.start(tunnel.reverse.commands.ssh);
    await stack.waitForTunnel(
      tunnel.id,
      (t) => t.status.state === 'up',
      15_000,
      () => ssh.stderr(),
    );

    const up = await runTest(tunnel.id);
    expect(up.checks.map((c) => [c.name, c.ok])).toEqual([
      ['configured', true],
      ['customer_connected', true],
      ['channel', true],
      ['probe', true],
    ]);
    expect(up.checks[1]?.message).toMatch(/customer session from .* on worker wk_/);

    ssh.kill();
    await stack.waitForTunnel(tunnel.id, (t) => t.status.state === 'down', 15_000);
    const down = await runTest(tunnel.id);
    expect(down.ok).toBe(false);
    expect(down.checks.at(-1)).toMatchObject({
      name: 'customer_connected',
      ok: false,
      code: 'customer_not_connected',
      hint: expect.stringMatching(/autossh|systemd/),
    });
  });

  it('a disabled tunnel fails at configuration; an unknown API key gets 401', async () => {
    const tunnel = await standard({ host: '127.0.0.1', port: echo.port });
    await stack.api('PATCH', `/v1/tunnels/${tunnel.id}`, { enabled: false });
    const result = await runTest(tunnel.id);
    expect(result).toMatchObject({ ok: false, checks: [{ name: 'configured', ok: false }] });
    const res = await fetch(`${stack.baseUrl}/v1/tunnels/${tunnel.id}/test`, {
      method: 'POST',
      headers: { Authorization: 'Bearer tk_someone-else-entirely' },
    });
    expect(res.status).toBe(401);
  });

  it('the control endpoint refuses callers without the token', async () => {
    const beat = await waitForControlUrl(stack);
    const res = await fetch(`${beat}/tunnels/tun_aaaaaaaaaaaaaaaa/test`, { method: 'POST' });
    expect(res.status).toBe(401);
    const wrong = await fetch(`${beat}/tunnels/tun_aaaaaaaaaaaaaaaa/test`, {
      method: 'POST',
      headers: { Authorization: 'Bearer tkc_wrong' },
    });
    expect(wrong.status).toBe(401);
  });
});

/** The control URL the gateway announced in its log at start-up. */
async function waitForControlUrl(stack: TestStack): Promise<string> {
  const line = await stack.waitForLog((l) => l.msg === 'control endpoint listening', 5_000);
  return String(line.url);
}

/** A TCP relay on `host:port` to 127.0.0.1:`to`. */
async function relay(host: string, port: number, to: number): Promise<Server> {
  const { connect } = await import('node:net');
  const server = createServer((socket) => {
    const upstream = connect(to, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return server;
}

/**
 * Reverse logins while storage is down, with a real DynamoDB Local made unreachable (a proxy in
 * front of it is cut) and Debian's OpenSSH: a login that cannot be checked is refused as
 * "temporarily unavailable" (DISCONNECT reason 7, printed by ssh), never as a key problem; a
 * tunnel this gateway read recently logs in again from its cache and carries traffic; the cache
 * never outvotes storage once it answers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { type CountingProxy, startCountingProxy } from '../../bench/support/dynamo-proxy';
import type { Tunnel } from '../../shared/schemas';
import { type Customer, requireTools, reverseTunnelWithCustomer } from '../helpers/customer';
import { type EchoServer, echoProbe, startEchoServer } from '../helpers/echo';
import { type LogLine, startTestStack, type TestStack } from '../helpers/gateway-stack';
import { waitFor, withTimeout } from '../helpers/wait-for';

const HEARTBEAT_MS = 2_000;
const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;
/** What OpenSSH prints for our DISCONNECT with reason 7 (the port is the endpoint's). */
const unavailable = (port: number) =>
  new RegExp(
    `Received disconnect from 127\\.0\\.0\\.1 port ${port}:7: Tunnelkeeper is temporarily unavailable: ` +
      'it cannot check logins right now \\(its storage does not answer\\)\\. This is not a problem with your key',
  );

describe('reverse logins while storage is down', () => {
  let proxy: CountingProxy;
  let stack: TestStack;
  let echo: EchoServer;
  const customers: Customer[] = [];
  let cut = false;

  const logsSince = (mark: number, fields: Record<string, unknown>): LogLine[] =>
    stack.logs.slice(mark).filter((line) => Object.entries(fields).every(([k, v]) => line[k] === v));

  const cutStorage = async (mode: 'refuse' | 'blackhole') => {
    await proxy.cut(mode);
    cut = true;
  };
  const restoreStorage = async () => {
    if (!cut) return;
    cut = false;
    await proxy.restore();
  };

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    proxy = await startCountingProxy(inject('dynamoEndpoint'));
    stack = await startTestStack({
      portRange: '12700-12799',
      heartbeatIntervalMs: HEARTBEAT_MS,
      env: { DYNAMODB_ENDPOINT: proxy.endpoint },
    });
    echo = await startEchoServer();
  });

  afterEach(async () => {
    await restoreStorage();
    await Promise.all(customers.splice(0).map((c) => c.dispose()));
    await waitFor(() => stack.gateway.connectionCount === 0, 10_000, { what: 'no SSH connection left' });
  });

  afterAll(async () => {
    await restoreStorage();
    await echo?.close();
    await stack?.stop();
    await proxy?.close();
  });

  async function tunnelWithCustomer() {
    const made = await reverseTunnelWithCustomer(stack.createReverse, { host: '127.0.0.1', port: echo.port });
    customers.push(made.customer);
    return made;
  }

  it('refuses a login it cannot check as temporarily unavailable, then lets it in once storage is back', async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer();
    await cutStorage('refuse');
    const mark = stack.logs.length;
    const refused = await customer.exec(reverse.commands.ssh, 15_000);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(unavailable(stack.sshPort));
    expect(refused.stderr).not.toContain('Permission denied');
    const lines = logsSince(mark, { msg: 'ssh login refused', user: tunnel.id });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'warn',
      reason: 'storage unavailable: the tunnel could not be read, and this gateway has no recent copy',
      disconnectCode: 7,
    });
    expect(JSON.stringify(lines[0]?.err)).toContain('ECONNREFUSED');
    // Not the client's fault: no failed-login penalty for its address.
    expect(stack.gateway.admissionStats?.penalizedSources ?? 0).toBe(0);

    await restoreStorage();
    const ssh = customer.start(reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);
    expect(await echoProbe('127.0.0.1', reverse.remotePort, 5_000)).toBe(true);
  }, 60_000);

  it('says so within its read deadline when storage does not answer at all', async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer();
    await cutStorage('blackhole');
    const mark = stack.logs.length;
    const started = Date.now();
    const refused = await customer.exec(reverse.commands.ssh, 20_000);
    const ms = Date.now() - started;
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(unavailable(stack.sshPort));
    expect(ms).toBeLessThan(10_000); // the 5 s read deadline, well inside the handshake deadline
    const [line] = logsSince(mark, { msg: 'ssh login refused', user: tunnel.id });
    expect(JSON.stringify(line?.err)).toContain('took longer than 5000 ms');
    console.info(`figure: login refused as unavailable ${ms} ms after ssh started, storage blackholed`);
  }, 60_000);

  it('lets a tunnel it read recently log in again from its cache, and never lets the cache outvote storage', async () => {
    const { tunnel, reverse, customer } = await tunnelWithCustomer();
    const first = customer.start(reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, first.stderr);
    first.kill();
    await first.exited;
    await waitFor(() => stack.gateway.reverseTunnelCount === 0, 10_000, { what: 'the first session gone' });

    // A network blip and DynamoDB down at once: autossh reconnects.
    await cutStorage('refuse');
    const mark = stack.logs.length;
    const again = customer.start(reverse.commands.ssh);
    await waitFor(
      () => logsSince(mark, { msg: 'reverse forward granted', tunnelId: tunnel.id }).length === 1,
      15_000,
      {
        what: `forward granted from the cache (ssh said: ${again.stderr()})`,
      },
    );
    expect(await echoProbe('127.0.0.1', reverse.remotePort, 5_000)).toBe(true);
    const cached = logsSince(mark, {
      msg: 'ssh login checked against a cached tunnel: storage unavailable',
      tunnelId: tunnel.id,
    });
    expect(cached).toHaveLength(1);
    expect(logsSince(mark, { msg: 'ssh login refused' })).toEqual([]);
    expect(again.exit()).toBeUndefined();

    // Storage answers again, and says the tunnel is disabled: that wins over the cached copy.
    await restoreStorage();
    expect((await stack.api('PATCH', `/v1/tunnels/${tunnel.id}`, { enabled: false })).status).toBe(200);
    await withTimeout(again.exited, 10_000, 'ssh ends once the tunnel is disabled');
    const afterDisable = stack.logs.length;
    const refused = await customer.exec(reverse.commands.ssh, 15_000);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain('Permission denied (publickey)');
    expect(
      logsSince(afterDisable, { msg: 'ssh login refused', user: tunnel.id }).map((l) => l.reason),
    ).toContain('tunnel is disabled');
    // ...and it stays refused while storage is down again: the cache now holds the disabled record,
    // also after the next heartbeats' polls of the change log, which overlap and name the change again.
    await new Promise((resolve) => setTimeout(resolve, 2 * HEARTBEAT_MS + 500));
    await cutStorage('refuse');
    const stillRefused = await customer.exec(reverse.commands.ssh, 15_000);
    expect(stillRefused.stderr).toContain('Permission denied (publickey)');
  }, 60_000);
});

/**
 * The SSRF guard (issue 4, acceptance 7): with ALLOW_PRIVATE_SSH_HOSTS=false, standard tunnels to
 * loopback, link-local (cloud metadata), private addresses, or a name resolving to loopback are
 * refused with `ssh_host_forbidden`, before any connection: the bastion listening on the loopback
 * target never sees us.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bastion } from '../../helpers/bastion';
import { Cleanups } from '../../helpers/cleanups';
import { requireTools } from '../../helpers/customer';
import { startTestStack, type TestStack } from '../../helpers/gateway-stack';
import { createStandard, isDownWith, scheduledReconnects } from '../../helpers/standard';
import { waitFor } from '../../helpers/wait-for';

const CONNECTION_LOGGED = /Connection from 127\.0\.0\.1 port \d+ on 127\.0\.0\.1 port (\d+)/;

describe('standard tunnels with the SSRF guard on', () => {
  let stack: TestStack;
  let bastion: Bastion;
  const cleanups = new Cleanups();

  beforeAll(async () => {
    requireTools('ssh-keygen', 'pkill', 'pgrep', 'useradd', 'userdel');
    stack = await startTestStack({
      portRange: '28000-28399',
      env: {
        ALLOW_PRIVATE_SSH_HOSTS: 'false',
        RECONNECT_INITIAL_MS: '100',
        RECONNECT_MAX_MS: '1000',
        // Far above how fast the refusals must come: a real connection attempt would show as a timeout.
        BASTION_READY_TIMEOUT_MS: '20000',
      },
    });
    cleanups.add(() => stack.stop());
    bastion = await Bastion.start();
    cleanups.add(() => bastion.dispose());
  });

  afterAll(() => cleanups.runAll());

  it.each([
    ['127.0.0.1', '127.0.0.1', 'loopback'],
    ['169.254.169.254', '169.254.169.254', 'link-local (cloud metadata)'],
    ['10.0.0.1', '10.0.0.1', 'private'],
    ['::1', '::1', 'loopback'],
    ['localhost', /127\.0\.0\.1|::1/, 'loopback'],
  ])('ssh.host %s is refused with ssh_host_forbidden', async (host, address, kind) => {
    const created = await createStandard(stack.api, {
      ssh: { host, port: bastion.port, user: bastion.user },
      service: { host: '127.0.0.1', port: 5432 },
    });
    // Accepted by the API: the guard checks the resolved address where it is used, at connect time.
    expect(created.ssh?.host).toBe(host);
    const startedAt = Date.now();
    const down = await stack.waitForTunnel(created.id, isDownWith('ssh_host_forbidden'), 5_000);
    const refusedMs = Date.now() - startedAt;
    expect(down.connect).toBeNull();
    expect(down.status.error?.message).toContain(`the bastion ${host} resolves to`);
    expect(down.status.error?.message).toMatch(address);
    expect(down.status.error?.message).toContain(`a ${kind} address`);
    expect(down.status.error?.hint).toMatch(/public address/);
    // Far quicker than a connection attempt to an unroutable address could fail.
    expect(refusedMs).toBeLessThan(5_000);
  });

  it('the bastion never saw a connection from us, though the pool kept retrying', async () => {
    const tunnels = (await stack.api('GET', '/v1/tunnels?limit=100')).json.items as { id: string }[];
    expect(tunnels).toHaveLength(5);
    for (const { id } of tunnels) {
      await waitFor(() => scheduledReconnects(stack.logs, id).length >= 3, 10_000, {
        what: `three refused attempts of ${id}`,
      });
      expect((await stack.getTunnel(id)).status.error?.code).toBe('ssh_host_forbidden');
    }
    expect(bastion.output()).toContain(`Server listening on 127.0.0.1 port ${bastion.port}`);
    expect(bastion.output()).not.toMatch(CONNECTION_LOGGED);

    // The check above can fail: a connection to this sshd is logged, as this one of our own shows.
    const socket = connect(bastion.port, '127.0.0.1');
    socket.on('error', () => {});
    await waitFor(() => CONNECTION_LOGGED.exec(bastion.output())?.[1] === String(bastion.port), 5_000, {
      what: 'sshd logging our probe connection',
    });
    socket.destroy();
  });
});

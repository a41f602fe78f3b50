/**
 * A reverse tunnel to an IPv6 service, end to end: `-R <port>:[::1]:<port>` is a glob to the
 * shell, so the rendered commands quote it. A throwaway customer runs `reverse.commands.ssh` and
 * the crontab line's command (as cron hands it to sh) verbatim, in a home holding the files an
 * unquoted `[::1]` would match, and the platform reaches the service through `connect`.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serviceTagOf } from '../../shared/command-tag';
import type { Tunnel } from '../../shared/schemas';
import { type Customer, customerFor, requireTools } from '../helpers/customer';
import { type EchoServer, echoRoundTrip, startEchoServer } from '../helpers/echo';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import { parseCronLine } from '../helpers/render-check';

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

describe('a reverse tunnel to an IPv6 service', () => {
  let stack: TestStack;
  let echo: EchoServer;
  const customers: Customer[] = [];

  beforeAll(async () => {
    requireTools('ssh', 'autossh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    [stack, echo] = await Promise.all([
      startTestStack({ portRange: '12000-12099', heartbeatIntervalMs: 1_000 }),
      startEchoServer('::1'),
    ]);
  });

  afterEach(async () => {
    await Promise.all(customers.splice(0).map((c) => c.dispose()));
  });

  afterAll(async () => {
    await echo?.close();
    await stack?.stop();
  });

  /** A tunnel to [::1]:<echo> and a customer whose home holds the glob traps of its forward. */
  async function ipv6Customer() {
    const tunnel = await stack.createReverse({ host: '::1', port: echo.port });
    if (!tunnel.reverse || !tunnel.privateKey) throw new Error('reverse tunnel without commands or key');
    const customer = await customerFor(tunnel, tunnel.privateKey);
    customers.push(customer);
    // Unquoted, `<tag>:<remotePort>:[::1]:<port>` would glob to one of these names (`:` or `1` inside).
    const tag = serviceTagOf(tunnel.service);
    for (const middle of [':', '1']) {
      await writeFile(join(customer.home, `${tag}:${tunnel.reverse.remotePort}:${middle}:${echo.port}`), '');
    }
    return { tunnel, reverse: tunnel.reverse, customer };
  }

  it('is reached through reverse.commands.ssh run verbatim next to the files its brackets would glob to', async () => {
    const { tunnel, reverse, customer } = await ipv6Customer();
    expect(reverse.commands.ssh).toContain(
      `'${serviceTagOf(tunnel.service)}:${reverse.remotePort}:[::1]:${echo.port}'`,
    );
    const ssh = customer.start(reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);
    const trip = await echoRoundTrip('127.0.0.1', reverse.remotePort, 1024 * 1024, 30_000);
    expect(trip.receivedSha256).toBe(trip.sentSha256);
  });

  it("is reached through the crontab line's command as cron runs it", async () => {
    const { tunnel, reverse, customer } = await ipv6Customer();
    const cron = parseCronLine(reverse.commands.crontab);
    expect(cron.input).toBeUndefined();
    // autossh -f goes to the background; dispose() kills what the throwaway user still runs.
    const autossh = customer.start(cron.command);
    await stack.waitForTunnel(tunnel.id, isUp, 20_000, autossh.stderr);
    const trip = await echoRoundTrip('127.0.0.1', reverse.remotePort, 1024 * 1024, 30_000);
    expect(trip.receivedSha256).toBe(trip.sentSha256);
  });
});

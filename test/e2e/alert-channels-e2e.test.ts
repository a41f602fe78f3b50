/**
 * Customers' alert channels end to end (issue 16, acceptance 2, 3 and 5), on the local stack with
 * short intervals, real OpenSSH customers and receivers that check what the real ones check
 * (test/helpers/channel-receivers.ts). Each cell has its own tunnel and channels (narrowed to it by
 * `tunnelIds`) and runs beside the others on one stack:
 * - a Standard Webhooks channel whose receiver is down for a while: retried, and every delivery
 *   arrives once, in order, verified by the `standardwebhooks` library, which rejects a replay older
 *   than 5 minutes; a Slack channel on the same tunnel gets a message naming the tunnel, the error
 *   code and the hint;
 * - a muted tunnel that goes down: nothing during the window, one `tunnel.down` after it.
 * Flapping around the grace (acceptance 5's second half) is driven by the sweeper's clock in
 * test/lambda/sweeper/sweep-channels.test.ts and test/shared/status.test.ts.
 */

import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Tunnel } from '../../shared/schemas';
import { alertTimingEnv, SWEEP_MS } from '../helpers/alert-timing';
import {
  type ChannelReceiver,
  startSlackFake,
  startStandardWebhookReceiver,
} from '../helpers/channel-receivers';
import { type Customer, requireTools, reverseTunnelWithCustomer } from '../helpers/customer';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import { withoutFigures } from '../helpers/status-figures';
import { waitForMoreSweeps } from '../helpers/sweeps';
import { waitFor, withTimeout } from '../helpers/wait-for';

const GRACE_MS = 1_000;
const SETTLE_MS = 1_000;
const MUTE_MS = 6_000;
const LINK = 'https://console.example.com/tunnels/{tunnelId}';

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

describe.concurrent('alert channels end to end', () => {
  let stack: TestStack | undefined;
  let echo: EchoServer | undefined;
  const customers: Customer[] = [];
  const receivers: ChannelReceiver[] = [];

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    echo = await startEchoServer();
    stack = await startTestStack({
      portRange: '19200-19499',
      heartbeatIntervalMs: 1_000,
      keepaliveIntervalMs: 1_000,
      env: {
        ...alertTimingEnv(GRACE_MS),
        RECOVERY_SETTLE_MS: String(SETTLE_MS),
        ALERT_LINK_URL: LINK,
        // Receivers are on loopback: allowed here as under npm start (refusals: alert-channels.test.ts).
        ALLOW_PRIVATE_SSH_HOSTS: 'true',
      },
    });
  });

  afterAll(async () => {
    try {
      await Promise.all(customers.map((c) => c.dispose()));
      await stack?.stop();
    } finally {
      await Promise.all([echo?.close(), ...receivers.map((r) => r.close())]);
    }
  });

  const started = () => {
    if (!stack || !echo) throw new Error('beforeAll did not finish');
    return { stack, echo };
  };

  /** A reverse tunnel with its customer's ssh running, up. */
  const tunnelUp = async () => {
    const { stack, echo } = started();
    const made = await reverseTunnelWithCustomer(
      (service, publicKey) => stack.createReverse(service, publicKey),
      { host: '127.0.0.1', port: echo.port },
    );
    customers.push(made.customer);
    const ssh = made.customer.start(made.reverse.commands.ssh);
    await stack.waitForTunnel(made.tunnel.id, isUp, 15_000, ssh.stderr);
    return { ...made, ssh };
  };
  const killCustomer = async (customer: Customer, ssh: { exited: Promise<unknown> }) => {
    process.kill(await customer.pidOf('ssh'), 'SIGKILL');
    await withTimeout(ssh.exited, 10_000, 'customer ssh exit');
  };
  const createChannel = async (body: Record<string, unknown>) => {
    const res = await started().stack.api('POST', '/v1/alert-channels', body);
    expect(res.status).toBe(201);
    return res.json as { id: string; secret?: string };
  };

  it('webhook: the receiver down for a while, then every delivery once, in order, verified; slack: a readable message', async () => {
    const { stack } = started();
    let secret: string | undefined;
    const webhook = await startStandardWebhookReceiver(() => secret);
    const slack = await startSlackFake();
    receivers.push(webhook, slack);
    const { tunnel, customer, reverse, ssh } = await tunnelUp();
    secret = (
      await createChannel({ type: 'webhook', name: 'hook', url: webhook.url, tunnelIds: [tunnel.id] })
    ).secret;
    const slackChannel = await createChannel({
      type: 'slack',
      name: 'ops',
      url: slack.url,
      tunnelIds: [tunnel.id],
    });

    // The receiver is down through the incident's page: deliveries fail and are retried.
    await webhook.stopListening();
    await killCustomer(customer, ssh);
    const down = await stack.waitForTunnel(tunnel.id, (t) => t.status.state === 'down', 10_000);
    await stack.waitForLog(
      (l) =>
        l.msg === 'alert delivery failed; will retry' &&
        l.tunnelId === tunnel.id &&
        l.sink !== `channel:${slackChannel.id}`,
      GRACE_MS + 15_000,
    );
    const [slackDown] = await slack.waitForAccepted(1, 10_000);
    // The customer is back while the webhook receiver is still down: the up waits behind the down.
    const again = customer.start(reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, again.stderr);
    await waitForMoreSweeps(stack.logs, 3, 10_000);
    expect(webhook.requests).toEqual([]);

    await webhook.resumeListening();
    const accepted = await webhook.waitForAccepted(2, 10 * SWEEP_MS + 15_000);
    await waitForMoreSweeps(stack.logs, 3, 10_000);
    expect(webhook.requests.map((r) => `${r.answered} ${r.body?.type}`)).toEqual([
      '200 tunnel.down',
      '200 tunnel.up',
    ]);
    expect(accepted.map((r) => r.body.incidentId)).toEqual([
      `${tunnel.id}@${down.status.since}`,
      `${tunnel.id}@${down.status.since}`,
    ]);
    expect(accepted[0]?.body.status).toEqual(withoutFigures(down.status));

    // A replay of a delivery, once older than 5 minutes, is rejected by the library.
    const [first] = accepted;
    if (!first || !secret) throw new Error('no delivery');
    const headers = {
      'webhook-id': String(first.headers['webhook-id']),
      'webhook-timestamp': String(first.headers['webhook-timestamp']),
      'webhook-signature': String(first.headers['webhook-signature']),
    };
    const verifier = new Webhook(secret);
    expect(verifier.verify(first.raw, headers)).toMatchObject({ type: 'tunnel.down' });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Number(headers['webhook-timestamp']) * 1000 + 5 * 60_000 + 1_000);
      expect(() => verifier.verify(first.raw, headers)).toThrow('Message timestamp too old');
    } finally {
      vi.useRealTimers();
    }

    // Slack: the tunnel, the error code, the hint, the link; then its recovery.
    const error = down.status.error;
    if (!error) throw new Error('down without an error');
    expect(slackDown?.body.text).toContain(`Tunnel ${tunnel.name} is down: ${error.code}. ${error.hint}`);
    const blocks = JSON.stringify(slackDown?.body.blocks);
    expect(blocks).toContain(tunnel.name);
    expect(blocks).toContain(`\`${error.code}\``);
    expect(blocks).toContain(LINK.replace('{tunnelId}', tunnel.id));
    const slackAll = await slack.waitForAccepted(2, 10_000);
    const link = LINK.replace('{tunnelId}', tunnel.id);
    expect(slackAll.map((r) => r.body.text)).toEqual([
      slackDown?.body.text,
      `Tunnel ${tunnel.name} is up again ${link}`,
    ]);

    // The delivery log shows the failed attempts and the successes, newest first.
    const log = await stack.api('GET', `/v1/alert-channels/${slackChannel.id}/deliveries`);
    expect(log.json.items.map((d: { type: string; ok: boolean }) => `${d.type} ${d.ok}`)).toEqual([
      'tunnel.up true',
      'tunnel.down true',
    ]);
  });

  it('a muted tunnel that goes down: nothing during the window, one tunnel.down after it', async () => {
    const { stack } = started();
    const slack = await startSlackFake();
    receivers.push(slack);
    const { tunnel, customer, reverse, ssh } = await tunnelUp();
    await createChannel({ type: 'slack', name: 'ops', url: slack.url, tunnelIds: [tunnel.id] });
    const mutedUntil = new Date(Date.now() + MUTE_MS);
    const patched = await stack.api('PATCH', `/v1/tunnels/${tunnel.id}`, {
      alerts: { mutedUntil: mutedUntil.toISOString() },
    });
    expect(patched.status).toBe(200);

    await killCustomer(customer, ssh);
    await stack.waitForTunnel(tunnel.id, (t) => t.status.state === 'down', 10_000);
    // Recorded as always.
    await stack.waitForLog(
      (l) => l.msg === 'tunnel status changed' && l.tunnelId === tunnel.id && l.to === 'down',
      10_000,
    );
    // Past the grace, still within the window: nothing.
    await waitFor(() => Date.now() >= mutedUntil.getTime() - SWEEP_MS, MUTE_MS + 1_000, {
      what: 'the end of the window',
      intervalMs: 50,
    });
    expect(slack.requests).toEqual([]);
    const [page] = await slack.waitForAccepted(1, 10_000);
    expect(page?.at).toBeGreaterThanOrEqual(mutedUntil.getTime());
    expect(page?.body.text).toMatch(new RegExp(`^Tunnel ${tunnel.name} is down`));

    const again = customer.start(reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, again.stderr);
    await slack.waitForAccepted(2, SETTLE_MS + 10_000);
    await waitForMoreSweeps(stack.logs, 3, 10_000);
    expect(slack.requests.map((r) => r.body?.text.split(' ').slice(2).join(' '))).toEqual([
      expect.stringMatching(/^is down: customer_not_connected\. /),
      `is up again ${LINK.replace('{tunnelId}', tunnel.id)}`,
    ]);
  });
});

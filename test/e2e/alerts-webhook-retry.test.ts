/**
 * Alert delivery through an outage of the on-call webhook (issue 5, acceptance 5): while the
 * receiver is not listening, then answering 503, the sweeper keeps the alert in its outbox and
 * retries with backoff; once the receiver is back the alert arrives within a bounded time, exactly
 * once, with a signature that verifies with the shared secret.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../shared/schemas';
import { type AlertReceiver, startAlertReceiver } from '../helpers/alert-receiver';
import { alertTimingEnv, SWEEP_MS } from '../helpers/alert-timing';
import { type Customer, customerFor, requireTools, sshKeygen } from '../helpers/customer';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { type LogLine, startTestStack, type TestStack } from '../helpers/gateway-stack';
import { withoutFigures } from '../helpers/status-figures';
import { waitForMoreSweeps } from '../helpers/sweeps';
import { waitFor, withTimeout } from '../helpers/wait-for';

const GRACE_MS = 1_000;
/**
 * Once the receiver is back, the alert's next attempt is due within the sweeper's largest backoff
 * (lambda/sweeper/compose.ts: ten sweep intervals), then waits for the next sweep; plus a margin
 * for the sweep itself and the webhook sink's own short retries.
 */
const RETRY_MAX_MS = 10 * SWEEP_MS;
const BACK_TO_DELIVERED_BOUND_MS = RETRY_MAX_MS + 2 * SWEEP_MS + 2_000;

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

describe('alerts through a webhook receiver outage', () => {
  let stack: TestStack | undefined;
  let echo: EchoServer | undefined;
  let receiver: AlertReceiver | undefined;
  let customer: Customer | undefined;
  const secret = `whsec_${randomBytes(24).toString('base64url')}`;

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    receiver = await startAlertReceiver(() => secret);
    await receiver.stopListening(); // down from the start: the URL refuses connections
    echo = await startEchoServer();
    stack = await startTestStack({
      portRange: '30500-30999',
      env: {
        ...alertTimingEnv(GRACE_MS),
        ALERT_WEBHOOK_URL: receiver.url,
        ALERT_WEBHOOK_SECRET: secret,
      },
    });
  });

  afterEach(async () => {
    await customer?.dispose();
    customer = undefined;
  });

  afterAll(async () => {
    try {
      await stack?.stop();
    } finally {
      await Promise.all([echo?.close(), receiver?.close()]);
    }
  });

  it('retries while the receiver refuses and answers 503, then delivers once, signed, soon after it is back', async () => {
    if (!stack || !echo || !receiver) throw new Error('beforeAll did not finish');
    const logs = stack.logs;
    const key = await sshKeygen('ed25519');
    const tunnel = await stack.createReverse({ host: '127.0.0.1', port: echo.port }, key.publicKey);
    if (!tunnel.reverse) throw new Error('no reverse block');
    customer = await customerFor(tunnel, key.privateKey);
    const ssh = customer.start(tunnel.reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);
    process.kill(await customer.pidOf('ssh'), 'SIGKILL');
    await withTimeout(ssh.exited, 10_000, 'customer ssh exit');
    const down = await stack.waitForTunnel(tunnel.id, (t) => t.status.state === 'down', 10_000);

    const failures = (pattern: RegExp) =>
      logs.filter(
        (l: LogLine) =>
          l.msg === 'alert delivery failed; will retry' &&
          l.tunnelId === tunnel.id &&
          l.sink === 'webhook' &&
          pattern.test(String((l.err as { message?: unknown } | undefined)?.message)),
      );
    const waitForFailures = (pattern: RegExp, count: number) =>
      waitFor(() => failures(pattern).length >= count, 30_000, {
        what: `${count} failed deliveries matching ${pattern}`,
      });

    // 1. Not listening: connections are refused, the sweeper keeps the alert and retries.
    await waitForFailures(/ECONNREFUSED/, 2);
    expect(receiver.requests).toEqual([]);
    // The log sink is not held back by the webhook: it has the alert already, once.
    expect(logs.filter((l) => l.msg === 'tunnel alert' && l.tunnelId === tunnel.id)).toHaveLength(1);

    // 2. Listening but answering 503: still retried.
    receiver.answerWith(503);
    await receiver.resumeListening();
    await waitForFailures(/HTTP 503/, 2);
    expect(receiver.delivered()).toEqual([]);

    // 3. Back: the next retry gets through.
    receiver.answerWith(200);
    const backAt = Date.now();
    const [delivered] = await receiver.waitForDelivered(
      { tunnelId: tunnel.id, type: 'tunnel.down' },
      1,
      BACK_TO_DELIVERED_BOUND_MS + 10_000,
    );
    if (!delivered?.alert) throw new Error('no tunnel.down delivered');
    const backToDeliveredMs = delivered.at - backAt;
    expect(backToDeliveredMs).toBeLessThanOrEqual(BACK_TO_DELIVERED_BOUND_MS);
    expect(delivered.alert.status).toEqual(withoutFigures(down.status));

    // The customer comes back: the tunnel.up goes straight through.
    const again = customer.start(tunnel.reverse.commands.ssh);
    await stack.waitForTunnel(tunnel.id, isUp, 15_000, again.stderr);
    await receiver.waitForDelivered({ tunnelId: tunnel.id, type: 'tunnel.up' }, 1, 10_000);
    await waitForMoreSweeps(logs, 3, 10_000);

    const requests = receiver.requestsFor(tunnel.id);
    // Every request, failed or not, was signed with the shared secret and carried the contract's body.
    expect(requests.every((r) => r.isSignatureValid && r.shapeError === undefined)).toBe(true);
    const downRequests = requests.filter((r) => r.alert?.type === 'tunnel.down');
    expect(downRequests.map((r) => r.answered)).toEqual([...Array(downRequests.length - 1).fill(503), 200]);
    // All of them the same alert: one id, one body (however its keys were ordered on the wire).
    expect(new Set(downRequests.map((r) => r.alertId)).size).toBe(1);
    for (const r of downRequests) expect(r.alert).toEqual(delivered.alert);
    // Delivered exactly once each.
    expect(receiver.delivered({ tunnelId: tunnel.id }).map((r) => r.alert?.type)).toEqual([
      'tunnel.down',
      'tunnel.up',
    ]);
    expect(logs.filter((l) => l.msg === 'tunnel alert' && l.tunnelId === tunnel.id)).toHaveLength(2);
    expect(logs.filter((l) => l.msg === 'alert delivery gave up')).toEqual([]);

    const graceEnd = Date.parse(down.status.since) + GRACE_MS;
    const attempts = failures(/./).map((l) => `${Date.parse(String(l.time)) - graceEnd}`);
    console.info(
      `figure: webhook outage: ${failures(/./).length} failed delivery rounds ` +
        `(${failures(/ECONNREFUSED/).length} refused, ${failures(/HTTP 503/).length} × 503; ` +
        `${downRequests.length - 1} HTTP requests answered 503) ending at +[${attempts.join(', ')}] ms after the grace; ` +
        `delivered ${backToDeliveredMs} ms after the receiver was back (bound ${BACK_TO_DELIVERED_BOUND_MS} ms)`,
    );
  });
});

/**
 * After the customer fixes the bastion, a standard tunnel need not wait out its backoff (issue 13,
 * acceptance 5): `POST /v1/tunnels/{id}/reconnect`, or a passing `POST .../test`, makes the worker
 * serving it connect at once. The backoff here is set long (the next attempt 10-20 s away) so that
 * coming up within seconds can only be the reconnect's doing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bastion } from '../../helpers/bastion';
import { Cleanups } from '../../helpers/cleanups';
import { requireTools } from '../../helpers/customer';
import { type EchoServer, echoRoundTrip, startEchoServer } from '../../helpers/echo';
import { startTestStack, type TestStack } from '../../helpers/gateway-stack';
import { createStandard, isDownWith, isUp, scheduledReconnects } from '../../helpers/standard';

const RECONNECT_INITIAL_MS = 20_000;

describe.concurrent('standard tunnels reconnect at once after a fix', () => {
  const cleanups = new Cleanups();
  let stack: TestStack;
  let bastion: Bastion;
  let echo: EchoServer;
  const installed: string[] = [];
  let installing: Promise<void> = Promise.resolve();
  const install = (line: string) => {
    installing = installing.then(async () => {
      installed.push(line);
      await bastion.setAuthorizedKeys(installed);
    });
    return installing;
  };

  beforeAll(async () => {
    requireTools('ssh-keygen', 'useradd', 'userdel', 'pkill');
    [stack, bastion, echo] = await Promise.all([
      cleanups.started(
        startTestStack({
          portRange: '14200-14399',
          heartbeatIntervalMs: 1_000,
          env: {
            RECONNECT_INITIAL_MS: String(RECONNECT_INITIAL_MS),
            RECONNECT_MAX_MS: '30000',
            POOL_POLL_INTERVAL_MS: '500',
            BASTION_READY_TIMEOUT_MS: '5000',
          },
        }),
        (s) => s.stop(),
      ),
      cleanups.started(Bastion.start(), (b) => b.dispose()),
      cleanups.started(startEchoServer(), (e) => e.close()),
    ]);
  });

  afterAll(() => cleanups.runAll());

  /** A tunnel whose key the bastion does not know yet: down with auth_failed, its retry far off. */
  async function refusedTunnel() {
    const created = await createStandard(stack.api, {
      ssh: { host: '127.0.0.1', port: bastion.port, user: bastion.user },
      service: { host: '127.0.0.1', port: echo.port },
    });
    const down = await stack.waitForTunnel(created.id, isDownWith('auth_failed'), 15_000, () =>
      bastion.output(),
    );
    await stack.waitForLog(
      (l) => l.msg === 'standard tunnel reconnect scheduled' && l.tunnelId === created.id,
      5_000,
    );
    const [retry] = scheduledReconnects(stack.logs, created.id);
    expect(retry?.delayMs).toBeGreaterThanOrEqual(RECONNECT_INITIAL_MS / 2);
    return { created, down };
  }

  it('POST /reconnect after the key is installed: up within seconds, not after the backoff', async () => {
    const { created, down } = await refusedTunnel();
    // The hint does not claim the line is missing; the message names the key the bastion refused.
    expect(down.status.error?.message).toContain(created.publicKeyFingerprint);
    expect(down.status.error?.hint).toMatch(/If the line is there, the bastion refused it: its log says why/);

    await install(created.authorizedKeysLine);
    const askedAt = Date.now();
    const res = await stack.api('POST', `/v1/tunnels/${created.id}/reconnect`);
    expect(res.status).toBe(202);
    expect(res.json.outcome).toBe('reconnecting');
    const up = await stack.waitForTunnel(created.id, isUp, RECONNECT_INITIAL_MS / 2, () => bastion.output());
    const upMs = Date.now() - askedAt;
    if (!up.connect) throw new Error('up without connect');
    const trip = await echoRoundTrip(up.connect.host, up.connect.port, 64 * 1024, 10_000);
    expect(trip.receivedSha256).toBe(trip.sentSha256);
    // One attempt, the one asked for: the backoff's own retry never came.
    expect(
      stack.logsWith({ tunnelId: created.id, msg: 'standard tunnel reconnecting now: backoff dropped' }),
    ).toHaveLength(1);
    console.info(
      `figure: POST /reconnect to up in ${upMs} ms (the backoff had the next attempt ${scheduledReconnects(stack.logs, created.id)[0]?.delayMs} ms away)`,
    );
    // The bound (measured ~0.3 s in CI; the backoff's next attempt was ~10 s away).
    expect(upMs).toBeLessThan(2_000);

    const again = await stack.api('POST', `/v1/tunnels/${created.id}/reconnect`);
    expect(again.status).toBe(202);
    expect(again.json).toEqual({ outcome: 'up', message: 'the tunnel is up; nothing to reconnect' });
  });

  it('a passing POST /test of a down tunnel reconnects it at once', async () => {
    const { created } = await refusedTunnel();
    await install(created.authorizedKeysLine);
    const askedAt = Date.now();
    const test = await stack.api('POST', `/v1/tunnels/${created.id}/test`);
    expect(test.status).toBe(200);
    expect(test.json.ok).toBe(true);
    await stack.waitForTunnel(created.id, isUp, RECONNECT_INITIAL_MS / 2, () => bastion.output());
    console.info(`figure: passing POST /test to up in ${Date.now() - askedAt} ms`);
    expect(
      stack.logsWith({ tunnelId: created.id, msg: 'standard tunnel reconnecting now: backoff dropped' }),
    ).toHaveLength(1);
  });
});

/**
 * `npm start` restarted in the middle of an incident (issue 5, acceptance 4): the stack runs as
 * `npm start` itself, with its embedded DynamoDB Local and the webhook signing secret it keeps in
 * DATA_DIR, and is stopped (SIGTERM) and started again on the same DATA_DIR after the tunnel's
 * `tunnel.down` went out. The restarted sweeper must not page that incident again, and the
 * recovery after the restart must still page `tunnel.up`, once.
 *
 * The workspace's own PagerDuty channel rides the same incident (issue 16, acceptance 1):
 * PAGERDUTY_EVENTS_URL points at a local fake of the Events API v2 that checks each event as
 * PagerDuty does; it must get exactly one `trigger` with the incident's `dedup_key` before the
 * restart and exactly one `resolve` with the same key after it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../local/free-port';
import type { Tunnel } from '../../shared/schemas';
import { type AlertReceiver, startAlertReceiver } from '../helpers/alert-receiver';
import { alertTimingEnv } from '../helpers/alert-timing';
import { type ChannelReceiver, startPagerDutyFake } from '../helpers/channel-receivers';
import { type Customer, customerFor, requireTools, sshKeygen } from '../helpers/customer';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { apiClient } from '../helpers/http-api';
import { disposeStacks, type StartedStack, startStack } from '../helpers/local-stack';
import { withoutFigures } from '../helpers/status-figures';
import { waitForMoreSweeps } from '../helpers/sweeps';
import { waitFor, withTimeout } from '../helpers/wait-for';

const GRACE_MS = 2_000;
const ROUTING_KEY = `R${randomBytes(16).toString('hex').slice(0, 31)}`;

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

describe('npm start restarted in the middle of an incident', () => {
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;
  const stacks: StartedStack[] = [];
  let dataDir: string | undefined;
  let receiver: AlertReceiver | undefined;
  let pagerDuty: ChannelReceiver | undefined;
  let echo: EchoServer | undefined;
  let customer: Customer | undefined;
  /** The secret npm start generated in DATA_DIR on its first start, once read. */
  let secret: string | undefined;
  let env: Record<string, string> = {};

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep', 'java');
    dataDir = await mkdtemp(join(tmpdir(), 'tk-restart-'));
    receiver = await startAlertReceiver(() => secret);
    pagerDuty = await startPagerDutyFake();
    echo = await startEchoServer();
    env = {
      DATA_DIR: dataDir,
      // The embedded DynamoDB Local, its files in DATA_DIR: what a restart must find again.
      DYNAMODB_ENDPOINT: '',
      SSH_PORT: String(await freePort()),
      BOOTSTRAP_API_KEY: apiKey,
      ADMIN_TOKEN: `tka_${randomBytes(24).toString('base64url')}`,
      TUNNEL_PORT_RANGE: '31500-31999',
      ...alertTimingEnv(GRACE_MS),
      ALERT_WEBHOOK_URL: receiver.url,
      PAGERDUTY_EVENTS_URL: pagerDuty.url,
      // Unset: npm start signs with the secret it generates and keeps in DATA_DIR.
      ALERT_WEBHOOK_SECRET: '',
      LOG_LEVEL: 'debug',
    };
  });

  afterAll(async () => {
    try {
      await customer?.dispose();
    } finally {
      await disposeStacks(stacks);
      await Promise.all([receiver?.close(), pagerDuty?.close(), echo?.close()]);
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    }
  });

  async function start(): Promise<StartedStack> {
    const stack = await startStack(env, 60_000, 'npm');
    stacks.push(stack);
    return stack;
  }

  it('sends no alert twice after the restart, and one tunnel.up for the recovery after it', async () => {
    if (!receiver || !echo || !dataDir || !pagerDuty) throw new Error('beforeAll did not finish');
    const pd = pagerDuty;
    let current = await start();
    const secretFile = join(dataDir, 'alert-webhook-secret');
    secret = (await readFile(secretFile, 'utf8')).trim();
    expect(current.lines.some((l) => l.msg === 'alert webhook signing secret created')).toBe(true);
    const api = apiClient(() => current.baseUrl, apiKey);

    const key = await sshKeygen('ed25519');
    const tunnel = await api.createReverse('restart', { host: '127.0.0.1', port: echo.port }, key.publicKey);
    if (!tunnel.reverse) throw new Error('no reverse block');
    const channel = await api.call('POST', '/v1/alert-channels', {
      type: 'pagerduty',
      name: 'on-call',
      routingKey: ROUTING_KEY,
      tunnelIds: [tunnel.id],
    });
    expect(channel.status).toBe(201);
    customer = await customerFor(tunnel, key.privateKey);
    const ssh = customer.start(tunnel.reverse.commands.ssh);
    await api.waitForTunnel(tunnel.id, isUp, 15_000);
    const recorded = (stack: StartedStack, to: string) =>
      stack.waitForLog(
        (l) => l.msg === 'tunnel status changed' && l.tunnelId === tunnel.id && l.to === to,
        10_000,
      );
    await recorded(current, 'up');

    // The incident: the customer's ssh dies; after the grace, on-call is paged.
    process.kill(await customer.pidOf('ssh'), 'SIGKILL');
    await withTimeout(ssh.exited, 10_000, 'customer ssh exit');
    const down = await api.waitForTunnel(tunnel.id, (t) => t.status.state === 'down', 10_000);
    const [downAlert] = await receiver.waitForDelivered(
      { tunnelId: tunnel.id, type: 'tunnel.down' },
      1,
      GRACE_MS + 15_000,
    );
    if (!downAlert?.alert) throw new Error('no tunnel.down delivered');
    expect(downAlert.at - Date.parse(down.status.since)).toBeGreaterThanOrEqual(GRACE_MS);
    const incident = `${tunnel.id}@${down.status.since}`;
    const [trigger] = await pd.waitForAccepted(1, 10_000);
    expect(trigger?.body).toMatchObject({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: incident,
      payload: {
        summary: expect.stringContaining(`Tunnel restart is down: ${down.status.error?.code}`),
        source: 'restart',
        severity: 'critical',
      },
    });
    // The sweep that delivered them has finished (and settled the outbox) before the restart.
    for (const sink of ['webhook', `channel:${channel.json.id}`]) {
      await current.waitForLog(
        (l) => l.msg === 'alert delivered' && l.tunnelId === tunnel.id && l.sink === sink,
        5_000,
      );
    }
    await waitForMoreSweeps(current.lines, 1, 10_000);

    // Restart, as an operator would: SIGTERM to npm, then npm start again on the same DATA_DIR.
    const restartAt = Date.now();
    const stopped = await withTimeout(current.stop(), 15_000, 'npm start stopping');
    expect(stopped.stopped).toBe(true);
    current = await start();
    const restartMs = Date.now() - restartAt;
    expect((await readFile(secretFile, 'utf8')).trim()).toBe(secret);
    expect(current.lines.some((l) => l.msg === 'alert webhook signing secret created')).toBe(false);

    // The restarted sweeper has been over the tunnel several times: the incident goes on, unpaged.
    await waitForMoreSweeps(current.lines, 4, 15_000);
    const stillDown = await api.getTunnel(tunnel.id);
    expect(withoutFigures(stillDown.status)).toEqual(withoutFigures(down.status));
    expect(receiver.requestsFor(tunnel.id)).toHaveLength(1);
    expect(pd.requests).toHaveLength(1);
    expect(current.lines.filter((l) => l.msg === 'tunnel alert')).toEqual([]);

    // The customer comes back after the restart (same port, same host key): one tunnel.up.
    const again = customer.start(tunnel.reverse.commands.ssh);
    const restartedAt = Date.now();
    const up = await waitFor(
      async () => {
        const t = await api.getTunnel(tunnel.id);
        return isUp(t) ? t : undefined;
      },
      15_000,
      { what: `tunnel up after the restart (ssh: ${again.stderr()})`, intervalMs: 100 },
    );
    const [upAlert] = await receiver.waitForDelivered({ tunnelId: tunnel.id, type: 'tunnel.up' }, 1, 10_000);
    if (!upAlert?.alert) throw new Error('no tunnel.up delivered');
    expect(upAlert.alert.status).toEqual(withoutFigures(up.status));
    await waitForMoreSweeps(current.lines, 3, 10_000);

    const requests = receiver.requestsFor(tunnel.id);
    expect(requests.map((r) => `${r.answered} ${r.alert?.type}`)).toEqual([
      '200 tunnel.down',
      '200 tunnel.up',
    ]);
    // Signed with the secret kept in DATA_DIR, before and after the restart.
    expect(requests.every((r) => r.isSignatureValid && r.shapeError === undefined)).toBe(true);
    expect(requests[0]?.alertId).not.toBe(requests[1]?.alertId);
    // PagerDuty: one trigger before the restart, one resolve after it, one incident.
    await pd.waitForAccepted(2, 10_000);
    expect(pd.requests.map((r) => `${r.answered} ${r.body?.event_action} ${r.body?.dedup_key}`)).toEqual([
      `202 trigger ${incident}`,
      `202 resolve ${incident}`,
    ]);
    const deliveries = await api.call('GET', `/v1/alert-channels/${channel.json.id}/deliveries`);
    expect(
      deliveries.json.items.map((d: { type: string; statusCode: number }) => `${d.type} ${d.statusCode}`),
    ).toEqual(['tunnel.up 202', 'tunnel.down 202']);
    console.info(
      `figure: npm start restart (stop + start, embedded DynamoDB Local) took ${restartMs} ms; ` +
        `no re-page after it; tunnel.up ${upAlert.at - restartedAt} ms after the customer's ssh restarted`,
    );
    // Two starts of npm start with its own DynamoDB Local, a grace and an incident: seconds each.
  }, 180_000);
});

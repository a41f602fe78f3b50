/**
 * Each kind of alert channel against a local receiver that checks what the real one checks
 * (test/helpers/channel-receivers.ts): Standard Webhooks verified by the `standardwebhooks`
 * library (and a replay past 5 minutes refused by it), PagerDuty's Events API v2, Slack's message.
 * Channels are stored as the API stores them, credentials sealed under a key in a file secret store;
 * an item from before sealing (credentials in clear) still sends, and one whose sealed value does
 * not open sends nothing and says so.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ChannelCredentialSealer } from '../../../shared/alerts/channel-credentials';
import { incidentIdOf, standardWebhookHeaders } from '../../../shared/alerts/channel-messages';
import {
  type AlertChannelRecord,
  type ChannelCredentials,
  type ChannelDelivery,
  newWebhookSecret,
} from '../../../shared/alerts/channel-schemas';
import { type ChannelSettings, ChannelSink } from '../../../shared/alerts/channel-sink';
import { AlertDeliveryError, SecretNotFoundError } from '../../../shared/errors';
import { createLogger } from '../../../shared/logger';
import { FileSecretStore } from '../../../shared/secrets/file-secret-store';
import { sampleAlert } from '../../helpers/alerts';
import {
  type ChannelReceiver,
  startPagerDutyFake,
  startSlackFake,
  startStandardWebhookReceiver,
} from '../../helpers/channel-receivers';

const ROUTING_KEY = 'R0123456789abcdef0123456789abcde';
const DOWN_ID = 'tun_aaaaaaaaaaaaaaaa:tunnel.down@2026-01-03T00:00:00.000Z';
const UP_ID = 'tun_aaaaaaaaaaaaaaaa:tunnel.up@2026-01-03T00:00:00.000Z';
const down = sampleAlert();
const up = sampleAlert({ type: 'tunnel.up', status: { state: 'up', since: '2026-01-03T00:05:00.000Z' } });

describe('alert channel sinks', () => {
  const secret = newWebhookSecret();
  let webhook: ChannelReceiver;
  let pagerDuty: ChannelReceiver;
  let slack: ChannelReceiver;
  const log: { channelId: string; delivery: ChannelDelivery }[] = [];
  const logs: Record<string, unknown>[] = [];
  let dir: string;
  /** As the API has it (creates the key); the sinks open with the sweeper's (reads it). */
  let apiSealer: ChannelCredentialSealer;
  let sweeperSealer: ChannelCredentialSealer;

  beforeAll(async () => {
    [webhook, pagerDuty, slack] = await Promise.all([
      startStandardWebhookReceiver(() => secret),
      startPagerDutyFake(),
      startSlackFake(),
    ]);
    dir = await mkdtemp(join(tmpdir(), 'tk-channel-sink-'));
    const secrets = new FileSecretStore(join(dir, 'secrets'));
    apiSealer = new ChannelCredentialSealer(secrets, 'create');
    sweeperSealer = new ChannelCredentialSealer(secrets, 'read');
  });
  afterAll(async () => {
    await Promise.all([webhook.close(), pagerDuty.close(), slack.close()]);
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    for (const r of [webhook, pagerDuty, slack]) r.answerWith(undefined);
    log.length = 0;
    logs.length = 0;
  });

  const settings = (over: Partial<ChannelSettings> = {}): ChannelSettings => ({
    policy: { allowPrivate: true },
    pagerDutyUrl: pagerDuty.url,
    messages: { linkTemplate: 'https://console.example.com/tunnels/{tunnelId}' },
    sleep: async () => {},
    ...over,
  });
  const channel = (over: Partial<AlertChannelRecord>): AlertChannelRecord => ({
    id: 'ach_aaaaaaaaaaaaaaaa',
    workspaceId: 'ws_1',
    type: 'webhook',
    name: 'on-call',
    createdAt: '2026-01-01T00:00:00.000Z',
    ...over,
  });
  /** The channel as the API stores it: its credentials sealed, a webhook's URL beside them. */
  const stored = async (
    over: Partial<AlertChannelRecord> & ChannelCredentials,
  ): Promise<AlertChannelRecord> => {
    const { secret: webhookSecret, routingKey, url, ...rest } = over;
    const record = channel(rest);
    const credentials: ChannelCredentials =
      record.type === 'webhook'
        ? { secret: webhookSecret }
        : record.type === 'slack'
          ? { url }
          : { routingKey };
    const sealedCredentials = await apiSealer.seal(
      { workspaceId: record.workspaceId, channelId: record.id },
      credentials,
    );
    return { ...record, ...(record.type === 'webhook' ? { url } : {}), sealedCredentials };
  };
  const sinkOf = (record: AlertChannelRecord, over: Partial<ChannelSettings> = {}) =>
    new ChannelSink(
      record,
      sweeperSealer,
      settings(over),
      async (channelId, delivery) => {
        log.push({ channelId, delivery });
      },
      createLogger('debug', (line) => logs.push(JSON.parse(line) as Record<string, unknown>)),
    );
  const sink = async (over: Partial<AlertChannelRecord> & ChannelCredentials, settingsOver = {}) =>
    sinkOf(await stored(over), settingsOver);

  it('webhook: signed the Standard Webhooks way; the standardwebhooks library verifies it', async () => {
    await (await sink({ url: webhook.url, secret })).send({ id: DOWN_ID, body: down });
    const [request] = await webhook.waitForAccepted(1, 5_000);
    expect(request?.headers['webhook-id']).toBe(DOWN_ID);
    expect(request?.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(request?.body).toEqual({
      ...down,
      incidentId: 'tun_aaaaaaaaaaaaaaaa@2026-01-03T00:00:00.000Z',
      link: 'https://console.example.com/tunnels/tun_aaaaaaaaaaaaaaaa',
    });
    expect(log.map((l) => [l.channelId, l.delivery.ok, l.delivery.statusCode, l.delivery.type])).toEqual([
      ['ach_aaaaaaaaaaaaaaaa', true, 200, 'tunnel.down'],
    ]);
  });

  it('webhook: a replayed delivery older than 5 minutes is rejected by the library', async () => {
    await (await sink({ url: webhook.url, secret })).send({ id: DOWN_ID, body: down });
    const [request] = await webhook.waitForAccepted(1, 5_000, (r) => r.headers['webhook-id'] === DOWN_ID);
    if (!request) throw new Error('no delivery');
    const headers = {
      'webhook-id': String(request.headers['webhook-id']),
      'webhook-timestamp': String(request.headers['webhook-timestamp']),
      'webhook-signature': String(request.headers['webhook-signature']),
    };
    const receiver = new Webhook(secret);
    expect(receiver.verify(request.raw, headers)).toBeTruthy();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 5 * 60_000 + 2_000);
      expect(() => receiver.verify(request.raw, headers)).toThrow('Message timestamp too old');
    } finally {
      vi.useRealTimers();
    }
    // And a body changed in transit fails the signature, whatever its timestamp.
    expect(() => receiver.verify(request.raw.replace('orders-db', 'other-db'), headers)).toThrow(
      'No matching signature found',
    );
  });

  it('webhook: each retry is signed afresh with its own timestamp', () => {
    const body = '{"a":1}';
    const first = standardWebhookHeaders('msg_1', body, secret, 1_700_000_000_000);
    const later = standardWebhookHeaders('msg_1', body, secret, 1_700_000_600_000);
    expect(first['webhook-timestamp']).toBe('1700000000');
    expect(later['webhook-timestamp']).toBe('1700000600');
    expect(first['webhook-signature']).not.toBe(later['webhook-signature']);
  });

  it('pagerduty: trigger on tunnel.down and resolve on tunnel.up, with the incident as dedup_key', async () => {
    const pd = await sink({ type: 'pagerduty', routingKey: ROUTING_KEY });
    await pd.send({ id: DOWN_ID, body: down });
    await pd.send({ id: UP_ID, body: up });
    const [trigger, resolve] = await pagerDuty.waitForAccepted(2, 5_000);
    expect(trigger?.answered).toBe(202);
    expect(trigger?.body).toMatchObject({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: incidentIdOf(DOWN_ID),
      payload: {
        summary: 'Tunnel orders-db is down: customer_not_connected (no session)',
        source: 'orders-db',
        severity: 'critical',
        custom_details: { hint: 'run ssh', tunnelId: 'tun_aaaaaaaaaaaaaaaa' },
      },
      links: [{ href: 'https://console.example.com/tunnels/tun_aaaaaaaaaaaaaaaa', text: 'Open the tunnel' }],
    });
    expect(resolve?.body).toEqual({
      routing_key: ROUTING_KEY,
      event_action: 'resolve',
      dedup_key: incidentIdOf(DOWN_ID),
    });
    expect(incidentIdOf(UP_ID)).toBe(incidentIdOf(DOWN_ID));
  });

  it('pagerduty: an event PagerDuty rejects (400) is not retried; one it cannot take now (429) is', async () => {
    const bad = await sink({ type: 'pagerduty', routingKey: 'short-key-1' });
    const before = pagerDuty.requests.length;
    const err = await bad.send({ id: DOWN_ID, body: down }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlertDeliveryError);
    expect((err as AlertDeliveryError).retryable).toBe(false);
    expect(pagerDuty.requests.length - before).toBe(1);
    expect(log[0]?.delivery).toMatchObject({
      ok: false,
      statusCode: 400,
      error: 'receiver answered HTTP 400',
    });

    pagerDuty.answerWith(429);
    const throttled = await (await sink({ type: 'pagerduty', routingKey: ROUTING_KEY }))
      .send({ id: DOWN_ID, body: down })
      .catch((e: unknown) => e);
    expect((throttled as AlertDeliveryError).retryable).toBe(true);
    // Its own short retries first (2 attempts), each one in the delivery log.
    expect(log.slice(1).map((l) => l.delivery.statusCode)).toEqual([429, 429]);
  });

  it('slack: a readable message naming the tunnel, the error code, the hint and the link', async () => {
    const s = await sink({ type: 'slack', url: slack.url });
    await s.send({
      id: DOWN_ID,
      body: sampleAlert({
        tunnel: { id: 'tun_aaaaaaaaaaaaaaaa', name: 'db <prod> & co', workspaceId: 'ws_1' },
      }),
    });
    const [message] = await slack.waitForAccepted(1, 5_000);
    expect(message?.body.text).toBe(
      'Tunnel db &lt;prod&gt; &amp; co is down: customer_not_connected. run ssh https://console.example.com/tunnels/tun_aaaaaaaaaaaaaaaa',
    );
    const blocks = JSON.stringify(message?.body.blocks);
    // mrkdwn: the name is escaped, the code and the hint are there.
    expect(blocks).toContain('db &lt;prod&gt; &amp; co');
    expect(blocks).toContain('`customer_not_connected`');
    expect(blocks).toContain('*What to do:* run ssh');
    expect(blocks).toContain('<https://console.example.com/tunnels/tun_aaaaaaaaaaaaaaaa|Open the tunnel>');
  });

  it('a URL refused at send time is not retried, and the log says why', async () => {
    const s = await sink({ url: 'https://127.0.0.1:1/hook', secret }, { policy: { allowPrivate: false } });
    const err = await s.send({ id: DOWN_ID, body: down }).catch((e: unknown) => e);
    expect((err as AlertDeliveryError).retryable).toBe(false);
    expect(log.map((l) => l.delivery)).toEqual([
      expect.objectContaining({ ok: false, error: expect.stringMatching(/^refused: .*loopback/) }),
    ]);
    expect(log[0]?.delivery.statusCode).toBeUndefined();
  });

  it('the test message: every kind takes it; the answer comes back', async () => {
    const test = {
      kind: 'test' as const,
      id: 'test_1',
      at: new Date().toISOString(),
      channel: { id: 'ach_x', name: 'x' },
    };
    const results = await Promise.all([
      (await sink({ url: webhook.url, secret })).attempt(test),
      (await sink({ type: 'pagerduty', routingKey: ROUTING_KEY })).attempt(test),
      (await sink({ type: 'slack', url: slack.url })).attempt(test),
    ]);
    expect(results.map((r) => [r.ok, r.statusCode])).toEqual([
      [true, 200],
      [true, 202],
      [true, 200],
    ]);
    expect(results[1]?.response).toContain('"status":"success"');
    expect(log.map((l) => l.delivery.type)).toEqual(['test', 'test', 'test']);
  });

  it('an item from before sealing (credentials in clear) still sends, each kind', async () => {
    const legacy = [
      channel({ url: webhook.url, secret }),
      channel({ type: 'pagerduty', routingKey: ROUTING_KEY }),
      channel({ type: 'slack', url: slack.url }),
    ];
    const before = [webhook, pagerDuty, slack].map((r) => r.accepted().length);
    for (const record of legacy) await sinkOf(record).send({ id: DOWN_ID, body: down });
    expect([webhook, pagerDuty, slack].map((r, i) => r.accepted().length - (before[i] ?? 0))).toEqual([
      1, 1, 1,
    ]);
    expect(pagerDuty.accepted().at(-1)?.body.routing_key).toBe(ROUTING_KEY);
  });

  it("a sealed value that does not open (another channel's) sends nothing, is not retried, and says so without the credential", async () => {
    const other = await stored({ id: 'ach_bbbbbbbbbbbbbbbb', type: 'slack', url: slack.url });
    const record = channel({ type: 'slack', sealedCredentials: other.sealedCredentials });
    const sent = slack.requests.length;
    const err = await sinkOf(record)
      .send({ id: DOWN_ID, body: down })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlertDeliveryError);
    expect((err as AlertDeliveryError).retryable).toBe(false);
    expect(slack.requests.length).toBe(sent);
    expect(log.map((l) => l.delivery)).toEqual([
      expect.objectContaining({
        ok: false,
        latencyMs: 0,
        error: 'the stored credentials of this channel cannot be opened',
      }),
    ]);
    expect(logs).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: 'alert channel credentials cannot be opened',
        channelId: 'ach_aaaaaaaaaaaaaaaa',
        workspaceId: 'ws_1',
        err: expect.objectContaining({ name: 'SealedCredentialsError' }),
      }),
    ]);
    const everything = JSON.stringify([logs, log, String(err)]);
    expect(everything).not.toContain(slack.url);
    expect(everything).not.toContain(other.sealedCredentials);
  });

  it('a key that cannot be read fails the send as retryable (the outbox tries again later), sending nothing', async () => {
    const elsewhere = new FileSecretStore(join(dir, 'no-key-here'));
    const record = await stored({ url: webhook.url, secret });
    const sent = webhook.requests.length;
    const noKey = new ChannelSink(
      record,
      new ChannelCredentialSealer(elsewhere, 'read'),
      settings(),
      async () => {},
      createLogger('error', () => {}),
    );
    await expect(noKey.send({ id: DOWN_ID, body: down })).rejects.toBeInstanceOf(SecretNotFoundError);
    expect(webhook.requests.length).toBe(sent);
  });
});

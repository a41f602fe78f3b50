/**
 * `/v1/alert-channels` on DynamoDB Local: create (secret once), list, delete, test and the delivery
 * log; the SSRF guard at create time (issue 16, acceptance 4); quotas and workspace isolation; the
 * credentials sealed in the table (read raw here), items from before sealing still working; and
 * `PATCH /v1/tunnels/{id}` with `alerts.mutedUntil`.
 */

import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secretNames } from '../../../shared/secrets/secret-names';
import { keys } from '../../../shared/store/table';
import { createTestApi } from '../../helpers/api';
import {
  type ChannelReceiver,
  startPagerDutyFake,
  startSlackFake,
  startStandardWebhookReceiver,
} from '../../helpers/channel-receivers';

type Api = Awaited<ReturnType<typeof createTestApi>>;

describe('alert channels API', () => {
  let api: Api;
  /** The same table, as AWS runs it: private targets not allowed. */
  let strict: Api['app'];
  let secret: string | undefined;
  let webhook: ChannelReceiver;
  let pagerDuty: ChannelReceiver;
  let slack: ChannelReceiver;

  beforeAll(async () => {
    [webhook, pagerDuty, slack] = await Promise.all([
      startStandardWebhookReceiver(() => secret),
      startPagerDutyFake(),
      startSlackFake(),
    ]);
    api = await createTestApi({
      env: {
        ALLOW_PRIVATE_SSH_HOSTS: 'true',
        PAGERDUTY_EVENTS_URL: pagerDuty.url,
        MAX_ALERT_CHANNELS_PER_WORKSPACE: '3',
      },
    });
    strict = api.appWith({ env: { ALLOW_PRIVATE_SSH_HOSTS: 'false' } });
  });
  afterAll(async () => {
    await api?.close();
    await Promise.all([webhook?.close(), pagerDuty?.close(), slack?.close()]);
  });

  const strictCall = async (apiKey: string, body: unknown) => {
    const res = await strict.request('/v1/alert-channels', {
      method: 'POST',
      headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    // biome-ignore lint/suspicious/noExplicitAny: error bodies of many shapes
    return { status: res.status, json: (await res.json()) as any };
  };

  it.each([
    ['https://127.0.0.1/hook', 'loopback'],
    ['https://169.254.169.254/latest/meta-data/', 'link-local (cloud metadata)'],
    ['https://10.0.0.1/hook', 'private'],
    ['https://localhost/hook', 'localhost resolves to'],
    ['http://hooks.example.com/hook', 'must use https'],
  ])('refuses %s with 422 when private targets are not allowed (%s)', async (url, why) => {
    const ws = await api.newWorkspace();
    for (const type of ['webhook', 'slack']) {
      const res = await strictCall(ws.apiKey, { type, name: 'x', url });
      expect(res.status).toBe(422);
      expect(res.json.error.code).toBe('validation_failed');
      expect(res.json.error.details).toEqual([{ path: 'url', message: expect.stringContaining(why) }]);
    }
    expect((await api.call('GET', '/v1/alert-channels', ws.apiKey)).json.items).toEqual([]);
  });

  it('creates a webhook channel, shows its secret once, and the test alert verifies with it', async () => {
    const ws = await api.newWorkspace();
    const created = await api.call('POST', '/v1/alert-channels', ws.apiKey, {
      type: 'webhook',
      name: 'on-call hook',
      url: webhook.url,
    });
    expect(created.status).toBe(201);
    expect(created.json).toEqual({
      id: expect.stringMatching(/^ach_[a-z2-7]{16}$/),
      type: 'webhook',
      name: 'on-call hook',
      createdAt: expect.any(String),
      url: webhook.url,
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{43}=$/),
    });
    secret = created.json.secret;
    const listed = await api.call('GET', '/v1/alert-channels', ws.apiKey);
    expect(listed.json.items).toEqual(
      [{ ...created.json, secret: undefined }].map(({ secret: _s, ...c }) => c),
    );
    expect(JSON.stringify(listed.json)).not.toContain(String(secret));

    const tested = await api.call('POST', `/v1/alert-channels/${created.json.id}/test`, ws.apiKey);
    expect(tested.status).toBe(200);
    expect(tested.json).toMatchObject({ ok: true, statusCode: 200, response: '{"received":true}' });
    const [request] = await webhook.waitForAccepted(1, 5_000);
    expect(request?.body).toMatchObject({
      type: 'test',
      channel: { id: created.json.id, name: 'on-call hook' },
    });
    if (!request || !secret) throw new Error('no request');
    expect(
      new Webhook(secret).verify(request.raw, {
        'webhook-id': String(request.headers['webhook-id']),
        'webhook-timestamp': String(request.headers['webhook-timestamp']),
        'webhook-signature': String(request.headers['webhook-signature']),
      }),
    ).toMatchObject({ type: 'test' });

    const deliveries = await api.call('GET', `/v1/alert-channels/${created.json.id}/deliveries`, ws.apiKey);
    expect(deliveries.json.items).toEqual([
      {
        at: expect.any(String),
        alertId: String(request.headers['webhook-id']),
        type: 'test',
        ok: true,
        statusCode: 200,
        latencyMs: expect.any(Number),
      },
    ]);
  });

  it('a test to a receiver that refuses says so (200 with its answer), newest first in the log', async () => {
    const ws = await api.newWorkspace();
    const { json: channel } = await api.call('POST', '/v1/alert-channels', ws.apiKey, {
      type: 'pagerduty',
      name: 'pd',
      routingKey: 'R0123456789abcdef0123456789abcde',
    });
    expect(channel.target).toBe('routing key R012…');
    expect(JSON.stringify(channel)).not.toContain('R0123456789abcdef');
    const ok = await api.call('POST', `/v1/alert-channels/${channel.id}/test`, ws.apiKey);
    expect(ok.json).toMatchObject({ ok: true, statusCode: 202 });
    pagerDuty.answerWith(503);
    try {
      const down = await api.call('POST', `/v1/alert-channels/${channel.id}/test`, ws.apiKey);
      expect(down.status).toBe(200);
      expect(down.json).toMatchObject({ ok: false, statusCode: 503, error: 'receiver answered HTTP 503' });
    } finally {
      pagerDuty.answerWith(undefined);
    }
    const log = await api.call('GET', `/v1/alert-channels/${channel.id}/deliveries`, ws.apiKey);
    expect(log.json.items.map((d: { statusCode: number }) => d.statusCode)).toEqual([503, 202]);
    // A third test in a row is allowed; a fourth waits (a test sends to a URL of the customer's choosing).
    expect((await api.call('POST', `/v1/alert-channels/${channel.id}/test`, ws.apiKey)).status).toBe(200);
    const limited = await api.call('POST', `/v1/alert-channels/${channel.id}/test`, ws.apiKey);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('Retry-After'))).toBeGreaterThan(0);
  });

  /** The channel's item as DynamoDB holds it. */
  const rawItem = async (workspaceId: string, id: string) =>
    (
      await api.table.doc.send(
        new GetCommand({ TableName: api.table.tableName, Key: keys.alertChannel(workspaceId, id) }),
      )
    ).Item ?? {};

  it('keeps no credential in clear in the table: the secret, the Slack URL and the routing key are sealed', async () => {
    const ws = await api.newWorkspace();
    const routingKey = 'Pk3yOfThisServiceXXXXXXXXXXXXXXX';
    const slackToken = new URL(slack.url).pathname.replace('/services/', '');
    const created = {
      webhook: await api.call('POST', '/v1/alert-channels', ws.apiKey, {
        type: 'webhook',
        name: 'w',
        url: webhook.url,
      }),
      slack: await api.call('POST', '/v1/alert-channels', ws.apiKey, {
        type: 'slack',
        name: 's',
        url: slack.url,
      }),
      pagerduty: await api.call('POST', '/v1/alert-channels', ws.apiKey, {
        type: 'pagerduty',
        name: 'p',
        routingKey,
      }),
    };
    expect(Object.values(created).map((c) => c.status)).toEqual([201, 201, 201]);
    const webhookSecret: string = created.webhook.json.secret;
    expect(webhookSecret).toMatch(/^whsec_/);
    const credentials = [
      webhookSecret,
      webhookSecret.slice('whsec_'.length),
      slack.url,
      slackToken,
      routingKey,
    ];

    const items = await Promise.all(Object.values(created).map((c) => rawItem(ws.id, c.json.id)));
    for (const item of items) {
      expect(item.sealedCredentials).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
      expect(item).not.toHaveProperty('secret');
      expect(item).not.toHaveProperty('routingKey');
      const text = JSON.stringify(item);
      for (const credential of credentials) expect(text).not.toContain(credential);
    }
    const [webhookItem, slackItem, pagerDutyItem] = items;
    // A webhook's URL is where it delivers (shown in listings); a Slack URL is the credential.
    expect(webhookItem?.url).toBe(webhook.url);
    expect(slackItem).not.toHaveProperty('url');
    expect(slackItem?.target).toBe(`${new URL(slack.url).origin}/services/…`);
    expect(pagerDutyItem?.target).toBe('routing key Pk3y…');
    // The key is in the secret store, created with the first channel.
    expect(await api.secrets.get(secretNames.alertChannelKey)).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // Listings are as before; tests open the credentials and reach each receiver with them.
    const listed = (await api.call('GET', '/v1/alert-channels', ws.apiKey)).json.items;
    expect(listed.map((c: { target?: string; url?: string }) => c.target ?? c.url)).toEqual([
      webhook.url,
      `${new URL(slack.url).origin}/services/…`,
      'routing key Pk3y…',
    ]);
    secret = webhookSecret;
    const slackBefore = slack.accepted().length;
    for (const channel of Object.values(created)) {
      const tested = await api.call('POST', `/v1/alert-channels/${channel.json.id}/test`, ws.apiKey);
      expect(tested.json).toMatchObject({ ok: true });
    }
    expect(slack.accepted().length - slackBefore).toBe(1);
    expect(pagerDuty.accepted().at(-1)?.body.routing_key).toBe(routingKey);
    expect(webhook.accepted().at(-1)?.headers['webhook-id']).toMatch(/^test_/);
    const logs = api.logs.join('\n');
    for (const credential of credentials) expect(logs).not.toContain(credential);
  });

  it('a channel stored before sealing (credentials in clear) lists and tests as it did', async () => {
    const ws = await api.newWorkspace();
    const routingKey = 'L3gacyKeyXXXXXXXXXXXXXXXXXXXXXXX';
    const id = 'ach_legacylegacylega';
    await api.table.doc.send(
      new PutCommand({
        TableName: api.table.tableName,
        Item: {
          ...keys.alertChannel(ws.id, id),
          id,
          workspaceId: ws.id,
          type: 'pagerduty',
          name: 'old pd',
          createdAt: new Date().toISOString(),
          routingKey,
        },
      }),
    );
    const listed = (await api.call('GET', '/v1/alert-channels', ws.apiKey)).json.items;
    expect(listed).toEqual([
      { id, type: 'pagerduty', name: 'old pd', createdAt: expect.any(String), target: 'routing key L3ga…' },
    ]);
    const tested = await api.call('POST', `/v1/alert-channels/${id}/test`, ws.apiKey);
    expect(tested.json).toMatchObject({ ok: true, statusCode: 202 });
    expect(pagerDuty.accepted().at(-1)?.body.routing_key).toBe(routingKey);
  });

  it("a sealed value copied into another channel's item does not open: nothing sent, said plainly, nothing leaked", async () => {
    const ws = await api.newWorkspace();
    const make = (name: string) =>
      api.call('POST', '/v1/alert-channels', ws.apiKey, { type: 'slack', name, url: slack.url });
    const [{ json: a }, { json: b }] = [await make('a'), await make('b')];
    const sealedA = (await rawItem(ws.id, a.id)).sealedCredentials;
    await api.table.doc.send(
      new UpdateCommand({
        TableName: api.table.tableName,
        Key: keys.alertChannel(ws.id, b.id),
        UpdateExpression: 'SET sealedCredentials = :sealed',
        ExpressionAttributeValues: { ':sealed': sealedA },
      }),
    );
    const sent = slack.requests.length;
    const logsBefore = api.logs.length;
    const tested = await api.call('POST', `/v1/alert-channels/${b.id}/test`, ws.apiKey);
    expect(tested.status).toBe(200);
    expect(tested.json).toEqual({
      ok: false,
      latencyMs: 0,
      error: 'the stored credentials of this channel cannot be opened',
    });
    expect(slack.requests.length).toBe(sent);
    const deliveries = await api.call('GET', `/v1/alert-channels/${b.id}/deliveries`, ws.apiKey);
    expect(deliveries.json.items).toEqual([expect.objectContaining({ ok: false, type: 'test' })]);
    const lines = api.logs.slice(logsBefore).map((l) => JSON.parse(l));
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'error',
        msg: 'alert channel credentials cannot be opened',
        channelId: b.id,
      }),
    );
    const text = JSON.stringify([lines, tested.json]);
    expect(text).not.toContain(slack.url);
    expect(text).not.toContain(sealedA);
    // The original still opens where it belongs.
    expect((await api.call('POST', `/v1/alert-channels/${a.id}/test`, ws.apiKey)).json).toMatchObject({
      ok: true,
    });
  });

  it('validates bodies field by field, checks tunnelIds against the workspace, and keeps to the quota', async () => {
    const ws = await api.newWorkspace();
    const bad = await api.call('POST', '/v1/alert-channels', ws.apiKey, {
      type: 'pagerduty',
      name: '',
      routingKey: 'no spaces allowed',
    });
    expect(bad.status).toBe(422);
    expect(bad.json.error.details.map((d: { path: string }) => d.path).sort()).toEqual([
      'name',
      'routingKey',
    ]);
    const unknown = await api.call('POST', '/v1/alert-channels', ws.apiKey, {
      type: 'slack',
      name: 's',
      url: webhook.url,
      tunnelIds: ['tun_aaaaaaaaaaaaaaaa'],
    });
    expect(unknown.status).toBe(422);
    expect(unknown.json.error.details).toEqual([
      { path: 'tunnelIds.0', message: 'no tunnel tun_aaaaaaaaaaaaaaaa in this workspace' },
    ]);
    for (let i = 0; i < 3; i++) {
      const res = await api.call('POST', '/v1/alert-channels', ws.apiKey, {
        type: 'slack',
        name: `s${i}`,
        url: webhook.url,
      });
      expect(res.status).toBe(201);
      expect(res.json.target).toBe(`${new URL(webhook.url).origin}/hooks/…`);
    }
    const over = await api.call('POST', '/v1/alert-channels', ws.apiKey, {
      type: 'slack',
      name: 's3',
      url: webhook.url,
    });
    expect(over.status).toBe(409);
    expect(over.json.error.code).toBe('quota_exceeded');
    const [first] = (await api.call('GET', '/v1/alert-channels', ws.apiKey)).json.items;
    expect((await api.call('DELETE', `/v1/alert-channels/${first.id}`, ws.apiKey)).status).toBe(204);
    expect((await api.call('DELETE', `/v1/alert-channels/${first.id}`, ws.apiKey)).status).toBe(404);
    const again = await api.call('POST', '/v1/alert-channels', ws.apiKey, {
      type: 'slack',
      name: 's4',
      url: webhook.url,
    });
    expect(again.status).toBe(201);
  });

  it('keeps to the quota under concurrent creates: never a 500, never one too many', async () => {
    const ws = await api.newWorkspace();
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        api.call('POST', '/v1/alert-channels', ws.apiKey, { type: 'slack', name: `c${i}`, url: webhook.url }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 201, 201, 409, 409, 409]);
    expect((await api.call('GET', '/v1/alert-channels', ws.apiKey)).json.items).toHaveLength(3);
  });

  it("another workspace's channel is not found, whatever the route", async () => {
    const [a, b] = [await api.newWorkspace(), await api.newWorkspace()];
    const { json: channel } = await api.call('POST', '/v1/alert-channels', a.apiKey, {
      type: 'slack',
      name: 's',
      url: webhook.url,
    });
    for (const [method, path] of [
      ['DELETE', `/v1/alert-channels/${channel.id}`],
      ['POST', `/v1/alert-channels/${channel.id}/test`],
      ['GET', `/v1/alert-channels/${channel.id}/deliveries`],
    ] as const) {
      expect((await api.call(method, path, b.apiKey)).status).toBe(404);
    }
    expect((await api.call('GET', '/v1/alert-channels', b.apiKey)).json.items).toEqual([]);
    expect((await api.call('GET', '/v1/alert-channels/not-an-id/deliveries', a.apiKey)).status).toBe(422);
  });

  it('PATCH alerts.mutedUntil sets, shows and clears a maintenance window', async () => {
    const ws = await api.newWorkspace();
    const created = await api.call('POST', '/v1/tunnels', ws.apiKey, {
      type: 'reverse',
      name: 'db',
      service: { host: '127.0.0.1', port: 5432 },
    });
    const path = `/v1/tunnels/${created.json.id}`;
    const until = new Date(Date.now() + 3_600_000);
    const muted = await api.call('PATCH', path, ws.apiKey, {
      alerts: { mutedUntil: until.toISOString().replace('Z', '+00:00') },
    });
    expect(muted.status).toBe(200);
    expect(muted.json.alerts).toEqual({ mutedUntil: until.toISOString() });
    expect((await api.call('GET', path, ws.apiKey)).json.alerts).toEqual({ mutedUntil: until.toISOString() });
    for (const bad of ['tomorrow', new Date(Date.now() + 400 * 86_400_000).toISOString()]) {
      const res = await api.call('PATCH', path, ws.apiKey, { alerts: { mutedUntil: bad } });
      expect(res.status).toBe(422);
      expect(res.json.error.details[0].path).toBe('alerts.mutedUntil');
    }
    const cleared = await api.call('PATCH', path, ws.apiKey, { alerts: { mutedUntil: null } });
    expect(cleared.json.alerts).toBeUndefined();
  });
});

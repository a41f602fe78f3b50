/**
 * The sweeper's composition from configuration, and its scheduled Lambda entry end to end over
 * DynamoDB Local with SNS mocked and Secrets Manager faked (the AWS services here we cannot run).
 */
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';
import { sweepDepsFromEnv } from '../../../lambda/sweeper/compose';
import { newChannelId, newWebhookSecret } from '../../../shared/alerts/channel-schemas';
import { channelSettingsFrom, StoredChannelSinks } from '../../../shared/alerts/channel-sink';
import { newChannelKey, parseChannelKey, sealCredentials } from '../../../shared/alerts/sealed-credentials';
import { parseEnv } from '../../../shared/config';
import { ConfigError } from '../../../shared/errors';
import { silentLogger } from '../../../shared/logger';
import { AlertSchema } from '../../../shared/schemas';
import { FileSecretStore } from '../../../shared/secrets/file-secret-store';
import { DynamoAlertChannelStore } from '../../../shared/store/dynamo-alert-channels';
import { keys } from '../../../shared/store/table';
import { startStandardWebhookReceiver } from '../../helpers/channel-receivers';
import { createTestTable } from '../../helpers/dynamo';
import { gatewaySim, storeTunnels } from '../../helpers/gateway-sim';
import { FakeSecrets } from '../../helpers/secrets-manager-fake';
import { captureStdout } from '../../helpers/stdout';

type Table = Awaited<ReturnType<typeof createTestTable>>;
type Handler = typeof import('../../../lambda/sweeper/handler')['handler'];

const TOPIC = 'arn:aws:sns:us-east-1:123456789012:tunnel-alerts';
const CHANNEL_KEY_ID = 'tunnelkeeper/alerts/channel-key';
const sns = mockClient(SNSClient);

describe('sweepDepsFromEnv', () => {
  const doc = {} as Parameters<typeof sweepDepsFromEnv>[1]['doc'];
  // Composition reads nothing: no secret is looked for until a channel is sent to.
  const secrets = new FileSecretStore('/nonexistent/tunnelkeeper-secrets');
  const sinks = (env: Record<string, string>, webhookSecret?: string) =>
    sweepDepsFromEnv(parseEnv(env), { doc, logger: silentLogger, secrets, webhookSecret }).sinks.map(
      (s) => s.name,
    );

  it.each<[string, Record<string, string>, string[]]>([
    ['the log alone by default', {}, ['log']],
    ['SNS with ALERT_TOPIC_ARN', { ALERT_TOPIC_ARN: TOPIC }, ['log', 'sns']],
    [
      'the webhook with ALERT_WEBHOOK_URL and its secret',
      { ALERT_WEBHOOK_URL: 'https://hooks.example.com/t', ALERT_WEBHOOK_SECRET: 'whsec_0123456789abcdef' },
      ['log', 'webhook'],
    ],
    [
      'all three',
      {
        ALERT_TOPIC_ARN: TOPIC,
        ALERT_WEBHOOK_URL: 'https://hooks.example.com/t',
        ALERT_WEBHOOK_SECRET: 'whsec_0123456789abcdef',
      },
      ['log', 'sns', 'webhook'],
    ],
  ])('sends to %s', (_, env, expected) => {
    expect(sinks(env)).toEqual(expected);
  });

  it('takes the secret npm start keeps when the variable is unset', () => {
    expect(sinks({ ALERT_WEBHOOK_URL: 'https://hooks.example.com/t' }, 'whsec_kept-in-data-dir-000')).toEqual(
      ['log', 'webhook'],
    );
  });

  it('refuses a webhook it could not sign, naming the variable', () => {
    expect(() => sinks({ ALERT_WEBHOOK_URL: 'https://hooks.example.com/t' })).toThrow(ConfigError);
    expect(() => sinks({ ALERT_WEBHOOK_URL: 'https://hooks.example.com/t' })).toThrow(/ALERT_WEBHOOK_SECRET/);
  });

  it.each([
    ['the default minute: 30 s doubling to 10 min', '60000', { retryBaseMs: 30_000, retryMaxMs: 600_000 }],
    ['a test stack sweeping every 200 ms: as quick', '200', { retryBaseMs: 100, retryMaxMs: 2_000 }],
    ['an hourly sweep: capped at 10 min', '3600000', { retryBaseMs: 1_800_000, retryMaxMs: 600_000 }],
  ])('counts delivery backoff in sweeps: %s', (_, interval, expected) => {
    const deps = sweepDepsFromEnv(parseEnv({ SWEEP_INTERVAL_MS: interval }), {
      doc,
      logger: silentLogger,
      secrets,
    });
    expect(deps.delivery).toEqual(expected);
  });

  it('takes the status settings from the same configuration', () => {
    const deps = sweepDepsFromEnv(
      parseEnv({
        HEARTBEAT_INTERVAL_MS: '500',
        SSH_KEEPALIVE_INTERVAL_MS: '1000',
        DOWN_GRACE_MS: '2000',
        TUNNEL_BIND_HOST: '10.0.0.1',
        RECOVERY_SETTLE_MS: '3000',
      }),
      { doc, logger: silentLogger, secrets },
    );
    expect(deps.settings).toEqual({
      heartbeatIntervalMs: 500,
      keepaliveIntervalMs: 1000,
      downGraceMs: 2000,
      bindHost: '10.0.0.1',
      recoverySettleMs: 3000,
    });
  });

  it("gives alert channels AWS's address policy unless told otherwise: https to public addresses only", () => {
    const env = parseEnv({ PAGERDUTY_EVENTS_URL: 'https://events.example.com/v2/enqueue' });
    expect(sweepDepsFromEnv(env, { doc, logger: silentLogger, secrets }).channels).toBeInstanceOf(
      StoredChannelSinks,
    );
    expect(channelSettingsFrom(env, false)).toMatchObject({
      policy: { allowPrivate: false },
      pagerDutyUrl: 'https://events.example.com/v2/enqueue',
    });
    expect(channelSettingsFrom(env, true).policy.allowPrivate).toBe(true);
    expect(channelSettingsFrom({ ...env, ALLOW_PRIVATE_SSH_HOSTS: false }, true).policy.allowPrivate).toBe(
      false,
    );
  });
});

describe('sweeper Lambda handler', () => {
  let table: Table;
  let stdout: MockInstance | undefined;
  const secretsManager = new FakeSecrets();
  let secretsMock: ReturnType<FakeSecrets['mockClients']> | undefined;
  const logs: string[] = [];
  const context = { getRemainingTimeInMillis: () => 60_000 };

  const coldStart = async (): Promise<Handler> => {
    vi.resetModules();
    return (await import('../../../lambda/sweeper/handler')).handler;
  };

  beforeAll(async () => {
    table = await createTestTable();
    vi.stubEnv('TABLE_NAME', table.tableName);
    vi.stubEnv('DYNAMODB_ENDPOINT', table.endpoint);
    vi.stubEnv('ALERT_TOPIC_ARN', TOPIC);
    vi.stubEnv('ALERT_WEBHOOK_URL', '');
    vi.stubEnv('DOWN_GRACE_MS', '60000');
    vi.stubEnv('LOG_LEVEL', 'info');
    vi.stubEnv('AWS_REGION', 'us-east-1');
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIAFAKEFAKEFAKEFAKE');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'fake-secret-access-key');
    stdout = captureStdout(logs);
    secretsMock = secretsManager.mockClients();
  });

  afterAll(async () => {
    stdout?.mockRestore();
    vi.unstubAllEnvs();
    sns.restore();
    secretsMock?.restore();
    await table.drop();
  });

  beforeEach(() => {
    sns.reset();
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    logs.length = 0;
  });

  it('publishes a down tunnel to SNS once, however often it runs', async () => {
    const [tunnel] = await storeTunnels(table.doc, table.tableName, 'ws_handler', 1);
    if (!tunnel) throw new Error('no tunnel');
    await gatewaySim(table.doc, table.tableName).down(tunnel.id, Date.now() - 10 * 60_000, 'w1', 'c1');
    const handler = await coldStart();
    const report = await handler({ source: 'aws.events' }, context);
    expect(report).toMatchObject({ transitions: 1, alertsQueued: 1, delivered: 2, errors: 0 });
    await handler({ source: 'aws.events' }, context);
    await (await coldStart())({ source: 'aws.events' }, context);
    const published = sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(published).toHaveLength(1);
    expect(published[0]?.TopicArn).toBe(TOPIC);
    expect(AlertSchema.strict().parse(JSON.parse(published[0]?.Message ?? ''))).toMatchObject({
      type: 'tunnel.down',
      tunnel: { id: tunnel.id, workspaceId: 'ws_handler' },
    });
    expect(logs.some((l) => l.includes('"msg":"tunnel alert"'))).toBe(true);
  });

  it('fails the invocation on an unreadable item, so the error alarm sees it, and sweeps the rest', async () => {
    const [tunnel, healthy] = await storeTunnels(table.doc, table.tableName, 'ws_broken', 2);
    if (!tunnel || !healthy) throw new Error('no tunnels');
    await gatewaySim(table.doc, table.tableName).down(healthy.id, Date.now() - 10 * 60_000, 'w1', 'c9');
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: { ...keys.tunnelState(tunnel.id), state: 'sideways' },
      }),
    );
    const handler = await coldStart();
    await expect(handler({}, context)).rejects.toThrow(/sweep finished with 1 errors/);
    const skipped = logs.filter((l) => l.includes('"msg":"tunnel skipped: unreadable item"'));
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toContain(tunnel.id);
    expect(skipped[0]).toContain('"item":"STATE"');
    // The healthy tunnel, read in the same batch, still got its alert out.
    const published = sns.commandCalls(PublishCommand).map((c) => JSON.parse(c.args[0].input.Message ?? ''));
    expect(published.map((a) => a.tunnel.id)).toEqual([healthy.id]);
  });

  it("opens a sealed channel's credentials with the key from Secrets Manager, read once per container", async () => {
    const key = newChannelKey();
    secretsManager.values.set(CHANNEL_KEY_ID, key);
    const secret = newWebhookSecret();
    const receiver = await startStandardWebhookReceiver(() => secret);
    // A table of its own: the other cells leave an unreadable item that fails every sweep.
    const own = await createTestTable();
    try {
      vi.stubEnv('TABLE_NAME', own.tableName);
      // The receiver is on loopback, which AWS's address policy refuses unless told otherwise.
      vi.stubEnv('ALLOW_PRIVATE_SSH_HOSTS', 'true');
      const workspaceId = 'ws_sealed';
      const [a, b] = await storeTunnels(own.doc, own.tableName, workspaceId, 2);
      if (!a || !b) throw new Error('no tunnels');
      const id = newChannelId();
      await new DynamoAlertChannelStore(own.doc, own.tableName).createChannel(
        {
          id,
          workspaceId,
          type: 'webhook',
          name: 'hook',
          createdAt: new Date(Date.now() - 60 * 60_000).toISOString(),
          url: receiver.url,
          sealedCredentials: sealCredentials(
            parseChannelKey(key),
            { workspaceId, channelId: id },
            { secret },
          ),
        },
        10,
      );
      const sim = gatewaySim(own.doc, own.tableName);
      await sim.down(a.id, Date.now() - 10 * 60_000, 'w1', 'ca');
      const handler = await coldStart();
      expect(await handler({}, context)).toMatchObject({ alertsQueued: 1, errors: 0 });
      // A second invocation of the same container, another incident: the key is not read again.
      await sim.down(b.id, Date.now() - 10 * 60_000, 'w1', 'cb');
      expect(await handler({}, context)).toMatchObject({ alertsQueued: 1, errors: 0 });
      const delivered = await receiver.waitForAccepted(2, 5_000);
      expect(delivered.map((r) => r.body.tunnel.id).sort()).toEqual([a.id, b.id].sort());
      expect(receiver.requests.every((r) => r.rejected === undefined)).toBe(true);
      expect(secretsManager.calls.filter((c) => c.includes('alerts/channel-key'))).toEqual([
        `GetSecretValue ${CHANNEL_KEY_ID}`,
      ]);
      expect(logs.join('\n')).not.toContain(secret);
      expect(logs.join('\n')).not.toContain(key);
    } finally {
      vi.stubEnv('TABLE_NAME', table.tableName);
      vi.stubEnv('ALLOW_PRIVATE_SSH_HOSTS', '');
      await receiver.close();
      await own.drop();
    }
  });
});

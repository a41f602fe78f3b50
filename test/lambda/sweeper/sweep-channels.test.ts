/**
 * Alert channels as sinks of the sweeper's outbox, on DynamoDB Local with the gateway played by
 * writing STATE items and the sweeper's clock moved by the test. Receivers are local servers that
 * check what the real ones check (test/helpers/channel-receivers.ts); the channel sinks stamp and
 * sign with the real clock, as receivers verify against it. Channels are stored as the API stores
 * them (credentials sealed, the key in a file secret store), and the sweeper opens them as it does
 * in production: with a sealer that only reads the key.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { type SweepDeps, sweep } from '../../../lambda/sweeper/sweep';
import { ChannelCredentialSealer } from '../../../shared/alerts/channel-credentials';
import { incidentIdOf } from '../../../shared/alerts/channel-messages';
import {
  type ChannelCredentials,
  channelTarget,
  newChannelId,
  newWebhookSecret,
  type SealedAlertChannel,
} from '../../../shared/alerts/channel-schemas';
import { type ChannelSettings, StoredChannelSinks } from '../../../shared/alerts/channel-sink';
import { createLogger } from '../../../shared/logger';
import { FileSecretStore } from '../../../shared/secrets/file-secret-store';
import type { SecretStore } from '../../../shared/secrets/secret-store';
import type { StatusSettings } from '../../../shared/status';
import { DynamoAlertChannelStore } from '../../../shared/store/dynamo-alert-channels';
import { DynamoStatusStore } from '../../../shared/store/dynamo-status-store';
import { keys } from '../../../shared/store/table';
import { RecordingSink } from '../../helpers/alerts';
import {
  startPagerDutyFake,
  startSlackFake,
  startStandardWebhookReceiver,
} from '../../helpers/channel-receivers';
import { createTestTable } from '../../helpers/dynamo';
import { countingClient } from '../../helpers/dynamo-count';
import { gatewaySim, iso, storeTunnels, T0 } from '../../helpers/gateway-sim';

type Table = Awaited<ReturnType<typeof createTestTable>>;

const S = 1000;
const MIN = 60 * S;
/** Sweeper time between two sweeps: often enough for every edge below, few enough to run quickly. */
const STEP = 5 * S;
const ROUTING_KEY = 'R0123456789abcdef0123456789abcde';
const SETTINGS: StatusSettings = {
  heartbeatIntervalMs: 15 * S,
  keepaliveIntervalMs: 15 * S,
  downGraceMs: 15 * S,
  bindHost: '127.0.0.1',
  recoverySettleMs: 30 * S,
};

/** One cell's world: its own table, receivers and sweeper clock, so cells run side by side. */
async function setup(onTestFinished: (fn: () => Promise<void>) => void) {
  const t = await createTestTable();
  const sim = gatewaySim(t.doc, t.tableName);
  const channels = new DynamoAlertChannelStore(t.doc, t.tableName);
  const clock = { ms: T0 };
  const logs: Record<string, unknown>[] = [];
  const secret = newWebhookSecret();
  const [webhook, pagerDuty, slack] = await Promise.all([
    startStandardWebhookReceiver(() => secret),
    startPagerDutyFake(),
    startSlackFake(),
  ]);
  const dir = await mkdtemp(join(tmpdir(), 'tk-sweep-channels-'));
  onTestFinished(async () => {
    await Promise.all([webhook.close(), pagerDuty.close(), slack.close()]);
    await t.drop();
    await rm(dir, { recursive: true, force: true });
  });
  // Every read of the key, whichever sweeper makes it.
  const keyReads = { count: 0 };
  const files = new FileSecretStore(join(dir, 'secrets'));
  const secrets: SecretStore = {
    put: (name, value) => files.put(name, value),
    create: (name, value) => files.create(name, value),
    get: (name) => {
      keyReads.count++;
      return files.get(name);
    },
    delete: (name) => files.delete(name),
  };
  const apiSealer = new ChannelCredentialSealer(files, 'create');
  const channelSettings: ChannelSettings = {
    policy: { allowPrivate: true },
    pagerDutyUrl: pagerDuty.url,
    messages: {},
    sleep: async () => {},
  };
  /** One sweeper process: its own sealer, so its own read of the key. */
  const sweeper = (over: Partial<SweepDeps> & { doc?: Table['doc'] } = {}) => {
    const { doc, ...rest } = over;
    const logger = createLogger('debug', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
    const deps: SweepDeps = {
      store: new DynamoStatusStore(doc ?? t.doc, t.tableName),
      sinks: [],
      channels: new StoredChannelSinks(
        new DynamoAlertChannelStore(doc ?? t.doc, t.tableName),
        new ChannelCredentialSealer(secrets, 'read'),
        channelSettings,
        logger,
      ),
      logger,
      settings: SETTINGS,
      now: () => new Date(clock.ms),
      random: () => 0.5,
      delivery: { retryBaseMs: 2 * S, retryMaxMs: 8 * S },
      ...rest,
    };
    return () => sweep(deps);
  };
  /** A channel as the API creates it: credentials sealed, a webhook's URL beside them. */
  const addChannel = async (
    over: Partial<Omit<SealedAlertChannel, 'sealedCredentials'>> & ChannelCredentials,
  ): Promise<SealedAlertChannel> => {
    const { secret: webhookSecret, routingKey, url, ...rest } = over;
    const id = rest.id ?? newChannelId();
    const type = rest.type ?? 'webhook';
    const credentials: ChannelCredentials =
      type === 'webhook' ? { secret: webhookSecret } : type === 'slack' ? { url } : { routingKey };
    const record: SealedAlertChannel = {
      id,
      workspaceId: 'ws_1',
      type,
      name: 'hook',
      createdAt: iso(clock.ms),
      ...rest,
      sealedCredentials: await apiSealer.seal(
        { workspaceId: rest.workspaceId ?? 'ws_1', channelId: id },
        credentials,
      ),
    };
    if (type === 'webhook') record.url = url;
    const target = channelTarget(type, credentials);
    if (target) record.target = target;
    await channels.createChannel(record, 20);
    return record;
  };
  /** Sweeps every STEP of sweeper time from now to `toMs` (absolute). */
  const runUntil = async (run: () => Promise<unknown>, toMs: number) => {
    while (clock.ms < toMs) {
      clock.ms += STEP;
      await run();
    }
  };
  const alive = async (toMs: number) => sim.beat('w1', toMs);
  return {
    t,
    sim,
    channels,
    clock,
    logs,
    secret,
    webhook,
    pagerDuty,
    slack,
    sweeper,
    addChannel,
    runUntil,
    alive,
    keyReads,
  };
}

// Each cell sweeps a few dozen times on the shared DynamoDB Local: generous bounds for a busy machine.
describe.concurrent('sweep with alert channels', { timeout: 90_000 }, () => {
  it('a webhook receiver down for a while: retried, then every alert arrives, in order, once, verified', async ({
    onTestFinished,
  }) => {
    const { t, sim, channels, clock, secret, webhook, sweeper, addChannel, runUntil, alive } =
      await setup(onTestFinished);
    const [tunnel] = await storeTunnels(t.doc, t.tableName, 'ws_1', 1);
    if (!tunnel) throw new Error('no tunnel');
    const channel = await addChannel({ url: webhook.url, secret });
    const run = sweeper();
    await sim.up(tunnel.id, T0 - MIN, 'w1', 'c1');
    await alive(T0);
    await run();
    await webhook.stopListening();
    await sim.down(tunnel.id, T0 + S, 'w1', 'c1');
    await runUntil(run, T0 + 30 * S);
    // Down past the grace and back: both alerts wait in the outbox, the up behind the down.
    await sim.up(tunnel.id, T0 + 31 * S, 'w1', 'c2');
    for (let ms = 31 * S; ms <= 70 * S; ms += STEP) {
      await alive(T0 + ms);
      clock.ms = T0 + ms;
      await run();
    }
    expect(webhook.requests).toEqual([]);
    const log = await channels.listDeliveries(channel.id, 100);
    expect(log.length).toBeGreaterThanOrEqual(4);
    expect(log.every((d) => !d.ok && d.type === 'tunnel.down' && /ECONNREFUSED/.test(d.error ?? ''))).toBe(
      true,
    );

    await webhook.resumeListening();
    for (let ms = 71 * S; ms <= 100 * S; ms += STEP) {
      await alive(T0 + ms);
      clock.ms = T0 + ms;
      await run();
    }
    const accepted = webhook.accepted();
    expect(accepted.map((r) => r.body.type)).toEqual(['tunnel.down', 'tunnel.up']);
    expect(accepted.map((r) => r.body.incidentId)).toEqual([
      `${tunnel.id}@${iso(T0 + S)}`,
      `${tunnel.id}@${iso(T0 + S)}`,
    ]);
    expect(webhook.requests.every((r) => r.rejected === undefined)).toBe(true);
    expect((await channels.listDeliveries(channel.id, 100))[0]).toMatchObject({
      ok: true,
      type: 'tunnel.up',
    });
  });

  it('pagerduty through a tunnel flapping every 10 s around a 15 s grace for 2 minutes: one trigger, one resolve', async ({
    onTestFinished,
  }) => {
    const { t, sim, clock, pagerDuty, sweeper, addChannel, alive } = await setup(onTestFinished);
    const [tunnel] = await storeTunnels(t.doc, t.tableName, 'ws_1', 1);
    if (!tunnel) throw new Error('no tunnel');
    await addChannel({ type: 'pagerduty', routingKey: ROUTING_KEY, name: 'pd' });
    const run = sweeper();
    await sim.up(tunnel.id, T0 - MIN, 'w1', 'c-start');
    await alive(T0);
    await run();
    // Down 20 s (past the grace), up 10 s (within the settle time), for 2 minutes; a sweep every 5 s.
    for (let ms = STEP; ms < 2 * MIN; ms += STEP) {
      const cycle = Math.floor(ms / (30 * S));
      const start = cycle * 30 * S;
      if (ms === start + STEP) await sim.down(tunnel.id, T0 + start, 'w1', `u${cycle - 1}`);
      if (ms === start + 20 * S) await sim.up(tunnel.id, T0 + start + 20 * S, 'w1', `u${cycle}`);
      await alive(T0 + ms);
      clock.ms = T0 + ms;
      await run();
    }
    for (let ms = 2 * MIN; ms <= 3 * MIN; ms += STEP) {
      await alive(T0 + ms);
      clock.ms = T0 + ms;
      await run();
    }
    const events = pagerDuty.accepted().map((r) => `${r.body.event_action} ${r.body.dedup_key}`);
    expect(events).toEqual([`trigger ${tunnel.id}@${iso(T0)}`, `resolve ${tunnel.id}@${iso(T0)}`]);
    expect((await t.store.listEvents(tunnel.id, 100)).filter((e) => e.to === 'down')).toHaveLength(4);
  });

  it('a channel created mid-incident hears nothing of it (no tunnel.up without its down), the next incident in full', async ({
    onTestFinished,
  }) => {
    const { t, sim, clock, slack, sweeper, addChannel, runUntil, alive } = await setup(onTestFinished);
    const [tunnel] = await storeTunnels(t.doc, t.tableName, 'ws_1', 1);
    if (!tunnel) throw new Error('no tunnel');
    const operator = new RecordingSink('operator');
    const run = sweeper({ sinks: [operator] });
    await sim.up(tunnel.id, T0 - MIN, 'w1', 'c1');
    await alive(T0);
    await run();
    await sim.down(tunnel.id, T0 + S, 'w1', 'c1');
    await runUntil(run, T0 + 20 * S);
    // Created after the incident's tunnel.down went out.
    clock.ms += S;
    await addChannel({ type: 'slack', url: slack.url });
    await sim.up(tunnel.id, T0 + 21 * S, 'w1', 'c2');
    for (let ms = 21 * S; ms <= 60 * S; ms += STEP) {
      await alive(T0 + ms);
      clock.ms = T0 + ms;
      await run();
    }
    expect(operator.types()).toEqual([`tunnel.down ${tunnel.id}`, `tunnel.up ${tunnel.id}`]);
    expect(slack.requests).toEqual([]);
    // The next incident: both.
    await sim.down(tunnel.id, T0 + 61 * S, 'w1', 'c2');
    await runUntil(run, T0 + 80 * S);
    await sim.up(tunnel.id, T0 + 81 * S, 'w1', 'c3');
    for (let ms = 81 * S; ms <= 115 * S; ms += STEP) {
      await alive(T0 + ms);
      clock.ms = T0 + ms;
      await run();
    }
    expect(slack.accepted().map((r) => r.body.text)).toEqual([
      expect.stringMatching(
        /^Tunnel tunnel-0 is down: customer_not_connected\. Run reverse\.commands\.autossh/,
      ),
      'Tunnel tunnel-0 is up again',
    ]);
  });

  it('a channel deleted mid-incident gets nothing more; the operator still hears all, nothing is an error', async ({
    onTestFinished,
  }) => {
    const { t, sim, channels, clock, logs, pagerDuty, sweeper, addChannel, runUntil, alive } =
      await setup(onTestFinished);
    const [tunnel] = await storeTunnels(t.doc, t.tableName, 'ws_1', 1);
    if (!tunnel) throw new Error('no tunnel');
    const channel = await addChannel({ type: 'pagerduty', routingKey: ROUTING_KEY });
    const operator = new RecordingSink('operator');
    const run = sweeper({ sinks: [operator] });
    await sim.up(tunnel.id, T0 - MIN, 'w1', 'c1');
    await alive(T0);
    await run();
    pagerDuty.answerWith(503);
    await sim.down(tunnel.id, T0 + S, 'w1', 'c1');
    await runUntil(run, T0 + 20 * S);
    expect(pagerDuty.requests.length).toBeGreaterThan(0);
    await channels.deleteChannel('ws_1', channel.id);
    pagerDuty.answerWith(undefined);
    const sent = pagerDuty.requests.length;
    await sim.up(tunnel.id, T0 + 21 * S, 'w1', 'c2');
    for (let ms = 21 * S; ms <= 70 * S; ms += STEP) {
      await alive(T0 + ms);
      clock.ms = T0 + ms;
      await run();
    }
    expect(pagerDuty.requests).toHaveLength(sent);
    expect(operator.types()).toEqual([`tunnel.down ${tunnel.id}`, `tunnel.up ${tunnel.id}`]);
    expect(logs.filter((l) => l.msg === 'alert not sent: alert channel deleted')).toHaveLength(1);
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('tunnelIds narrows a channel; two racing sweepers still deliver each alert once per channel', async ({
    onTestFinished,
  }) => {
    const { t, sim, pagerDuty, slack, sweeper, addChannel, runUntil, alive } = await setup(onTestFinished);
    const [a, b] = await storeTunnels(t.doc, t.tableName, 'ws_1', 2);
    if (!a || !b) throw new Error('no tunnels');
    await addChannel({ type: 'pagerduty', routingKey: ROUTING_KEY, tunnelIds: [a.id] });
    await addChannel({ type: 'slack', url: slack.url });
    const runs = [sweeper({ sweeperId: 'sweeper-1' }), sweeper({ sweeperId: 'sweeper-2' })];
    const both = () => Promise.all(runs.map((r) => r()));
    for (const tunnel of [a, b]) await sim.up(tunnel.id, T0 - MIN, 'w1', `c-${tunnel.id}`);
    await alive(T0);
    await both();
    for (const tunnel of [a, b]) await sim.down(tunnel.id, T0 + S, 'w1', `c-${tunnel.id}`);
    await runUntil(both, T0 + 20 * S);
    expect(pagerDuty.accepted().map((r) => r.body.dedup_key)).toEqual([
      incidentIdOf(`${a.id}:tunnel.down@${iso(T0 + S)}`),
    ]);
    expect(
      slack
        .accepted()
        .map((r) => r.body.text.split(':')[0])
        .sort(),
    ).toEqual(['Tunnel tunnel-0 is down', 'Tunnel tunnel-1 is down']);
  });

  it('reads no channel in steady state: only when an alert is queued or owed', async ({ onTestFinished }) => {
    const { t, clock, slack, sweeper, addChannel } = await setup(onTestFinished);
    await storeTunnels(t.doc, t.tableName, 'ws_1', 3);
    await addChannel({ type: 'slack', url: slack.url });
    const counted = countingClient(t.doc);
    const run = sweeper({ doc: counted.doc });
    await run();
    await run();
    const before = counted.queries();
    for (let i = 0; i < 5; i++) {
      clock.ms += S;
      await run();
    }
    // Per sweep: one query per shard, no more (a channel read is a query on the workspace).
    expect(counted.queries() - before).toBe(5 * 16);
  });

  it('channels stored before sealing (clear) and after (sealed) both hear an incident; a sweeper reads the key once', async ({
    onTestFinished,
  }) => {
    const {
      t,
      sim,
      clock,
      secret,
      webhook,
      pagerDuty,
      slack,
      sweeper,
      addChannel,
      runUntil,
      alive,
      keyReads,
    } = await setup(onTestFinished);
    const [tunnel] = await storeTunnels(t.doc, t.tableName, 'ws_1', 1);
    if (!tunnel) throw new Error('no tunnel');
    await addChannel({ url: webhook.url, secret });
    await addChannel({ type: 'pagerduty', routingKey: ROUTING_KEY });
    // As the first version of alert channels wrote it: the Slack URL in clear, nothing sealed.
    const legacyId = newChannelId();
    await t.doc.send(
      new PutCommand({
        TableName: t.tableName,
        Item: {
          ...keys.alertChannel('ws_1', legacyId),
          id: legacyId,
          workspaceId: 'ws_1',
          type: 'slack',
          name: 'old slack',
          createdAt: iso(clock.ms),
          url: slack.url,
        },
      }),
    );
    const run = sweeper();
    await sim.up(tunnel.id, T0 - MIN, 'w1', 'c1');
    await alive(T0);
    await run();
    expect(keyReads.count).toBe(0); // steady state: no channel opened, no key read
    await sim.down(tunnel.id, T0 + S, 'w1', 'c1');
    await runUntil(run, T0 + 20 * S);
    await sim.up(tunnel.id, T0 + 21 * S, 'w1', 'c2');
    for (let ms = 21 * S; ms <= 60 * S; ms += STEP) {
      await alive(T0 + ms);
      clock.ms = T0 + ms;
      await run();
    }
    expect(webhook.accepted().map((r) => r.body.type)).toEqual(['tunnel.down', 'tunnel.up']);
    expect(webhook.requests.every((r) => r.rejected === undefined)).toBe(true);
    expect(pagerDuty.accepted().map((r) => `${r.body.event_action} ${r.body.routing_key}`)).toEqual([
      `trigger ${ROUTING_KEY}`,
      `resolve ${ROUTING_KEY}`,
    ]);
    expect(slack.accepted()).toHaveLength(2);
    // Four sealed sends over several sweeps, one read of the key.
    expect(keyReads.count).toBe(1);
  });
});

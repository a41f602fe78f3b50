/**
 * One alert channel as a sink of the sweeper's outbox: each attempt builds its request afresh (a
 * webhook is signed with the attempt's timestamp), goes out through the SSRF-guarded sender, and is
 * written to the channel's delivery log. A send retries briefly within itself; the outbox retries
 * across sweeps, keeps the order and the exactly-once bookkeeping (lambda/sweeper/sweep.ts). The
 * channel's credentials are opened for each attempt (channel-credentials.ts) and held no longer.
 */
import type { Env } from '../config';
import { AlertDeliveryError, SealedCredentialsError } from '../errors';
import type { Logger } from '../logger';
import { OutboundFailedError, postOutbound } from '../outbound-http';
import type { OutboundPolicy, Resolve } from '../outbound-url';
import type { AlertChannelStore } from '../store/dynamo-alert-channels';
import type { AlertDelivery, AlertSink } from './alert-sink';
import type { ChannelCredentialsOpener } from './channel-credentials';
import {
  type ChannelMessage,
  type ChannelRequest,
  type MessageSettings,
  pagerDutyBody,
  slackBody,
  standardWebhookHeaders,
  webhookBody,
} from './channel-messages';
import type {
  AlertChannelRecord,
  ChannelCredentials,
  ChannelDelivery,
  ChannelTestResult,
} from './channel-schemas';
import { type RetryPolicy, type Sleep, withRetries } from './retry';

/** The outbox's name for a channel: sinks of one alert are tracked by name. */
export const channelSinkName = (channelId: string): string => `channel:${channelId}`;
export const CHANNEL_SINK_PREFIX = 'channel:';

export interface ChannelSettings {
  /** SSRF policy for customer URLs (webhook, slack). */
  policy: OutboundPolicy;
  /** `PAGERDUTY_EVENTS_URL`: the operator's, trusted (not subject to the policy). */
  pagerDutyUrl: string;
  messages: MessageSettings;
  /** Per attempt: connect, send, answer. */
  timeoutMs?: number;
  maxResponseBytes?: number;
  retry?: RetryPolicy;
  resolve?: Resolve;
  sleep?: Sleep;
  random?: () => number;
  now?: () => Date;
}

/**
 * 5 s per attempt, 2 attempts with at most 0.5 s between: ≤ 11 s per send, well inside the outbox's
 * claim. 4 KiB of an answer is plenty for PagerDuty's and Slack's, and for a test's report.
 */
export const CHANNEL_DEFAULTS = {
  timeoutMs: 5_000,
  maxResponseBytes: 4_096,
  retry: { attempts: 2, baseDelayMs: 500, maxDelayMs: 2_000 } satisfies RetryPolicy,
};

/**
 * Channel settings of a runtime's configuration. Private targets (and plain http) follow
 * `ALLOW_PRIVATE_SSH_HOSTS`, whose default differs by runtime: allowed by `npm start`, not in AWS.
 */
export function channelSettingsFrom(
  env: Pick<Env, 'ALLOW_PRIVATE_SSH_HOSTS' | 'PAGERDUTY_EVENTS_URL' | 'ALERT_LINK_URL'>,
  allowPrivateByDefault: boolean,
): ChannelSettings {
  const settings: ChannelSettings = {
    policy: { allowPrivate: env.ALLOW_PRIVATE_SSH_HOSTS ?? allowPrivateByDefault },
    pagerDutyUrl: env.PAGERDUTY_EVENTS_URL,
    messages: {},
  };
  if (env.ALERT_LINK_URL) settings.messages.linkTemplate = env.ALERT_LINK_URL;
  return settings;
}

/** A workspace's alert channels as sinks, read from storage (one query per workspace). */
export interface ChannelSinkSource {
  forWorkspace(workspaceId: string): Promise<ChannelSink[]>;
}

/** The channels of `AlertChannelStore` as sinks, each attempt written to its delivery log. */
export class StoredChannelSinks implements ChannelSinkSource {
  constructor(
    private readonly store: Pick<AlertChannelStore, 'listChannels' | 'recordDelivery'>,
    private readonly credentials: ChannelCredentialsOpener,
    private readonly settings: ChannelSettings,
    private readonly logger: Logger,
  ) {}

  async forWorkspace(workspaceId: string): Promise<ChannelSink[]> {
    const records = await this.store.listChannels(workspaceId);
    const record: DeliveryRecorder = (id, delivery) => this.store.recordDelivery(id, delivery);
    return records.map(
      (channel) => new ChannelSink(channel, this.credentials, this.settings, record, this.logger),
    );
  }
}

/** Where each attempt is recorded (the delivery log); a failure to record never fails a delivery. */
export type DeliveryRecorder = (channelId: string, delivery: ChannelDelivery) => Promise<void>;

export class ChannelSink implements AlertSink {
  readonly name: string;
  private readonly now: () => Date;

  constructor(
    readonly channel: AlertChannelRecord,
    private readonly credentials: ChannelCredentialsOpener,
    private readonly settings: ChannelSettings,
    private readonly record: DeliveryRecorder,
    private readonly logger: Logger,
  ) {
    this.name = channelSinkName(channel.id);
    this.now = settings.now ?? (() => new Date());
  }

  async send({ id, body, signal }: AlertDelivery): Promise<void> {
    const message: ChannelMessage = { kind: 'alert', id, alert: body };
    await withRetries(
      async () => {
        const { result, isFinal } = await this.attemptOnce(message, signal);
        if (!result.ok) {
          const retryable = !isFinal && isRetryable(result);
          throw new AlertDeliveryError(this.name, id, retryable, result.error ?? 'failed');
        }
      },
      {
        policy: this.settings.retry ?? CHANNEL_DEFAULTS.retry,
        isRetryable: (err) => err instanceof AlertDeliveryError && err.retryable,
        sleep: this.settings.sleep,
        random: this.settings.random,
        signal,
      },
    );
  }

  /** One attempt, recorded in the delivery log; the receiver's answer, or why there was none. */
  async attempt(message: ChannelMessage, signal?: AbortSignal): Promise<ChannelTestResult> {
    return (await this.attemptOnce(message, signal)).result;
  }

  /** `isFinal`: no later attempt can do better (the stored credentials do not open). */
  private async attemptOnce(
    message: ChannelMessage,
    signal?: AbortSignal,
  ): Promise<{ result: ChannelTestResult; isFinal: boolean }> {
    const at = this.now();
    let credentials: ChannelCredentials;
    try {
      credentials = await this.credentials.open(this.channel);
    } catch (err) {
      // A secret store failure is thrown on (retried later); a sealed value that does not open is
      // ours to fix, and the customer's delivery log says that it failed without saying more.
      if (!(err instanceof SealedCredentialsError)) throw err;
      this.logger.error('alert channel credentials cannot be opened', {
        channelId: this.channel.id,
        workspaceId: this.channel.workspaceId,
        err,
      });
      const result = {
        ok: false,
        latencyMs: 0,
        error: 'the stored credentials of this channel cannot be opened',
      };
      await this.log(message, at, result);
      return { result, isFinal: true };
    }
    const { url, policy } = this.destination(credentials);
    const request = this.request(message, at.getTime(), credentials);
    let result: ChannelTestResult;
    try {
      const res = await postOutbound({
        url,
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'tunnelkeeper-alerts/1',
          ...request.headers,
        },
        body: request.body,
        timeoutMs: this.settings.timeoutMs ?? CHANNEL_DEFAULTS.timeoutMs,
        maxResponseBytes: this.settings.maxResponseBytes ?? CHANNEL_DEFAULTS.maxResponseBytes,
        policy,
        resolve: this.settings.resolve,
        signal,
      });
      const ok = res.status >= 200 && res.status < 300;
      result = { ok, statusCode: res.status, latencyMs: res.ms, response: printable(res.body) };
      if (!ok) {
        const redirect = res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : '';
        result.error = `receiver answered HTTP ${res.status}${redirect}`;
      }
    } catch (err) {
      if (!(err instanceof OutboundFailedError)) throw err;
      result = {
        ok: false,
        latencyMs: err.ms,
        error: err.isRefused ? `refused: ${err.message}` : err.message,
      };
    }
    await this.log(message, at, result);
    return { result, isFinal: false };
  }

  /** Into the delivery log; a failure to write it is logged, never a failed delivery. */
  private async log(message: ChannelMessage, at: Date, result: ChannelTestResult): Promise<void> {
    const delivery: ChannelDelivery = {
      at: at.toISOString(),
      alertId: message.id,
      type: message.kind === 'test' ? 'test' : message.alert.type,
      ok: result.ok,
      latencyMs: result.latencyMs,
    };
    if (result.statusCode !== undefined) delivery.statusCode = result.statusCode;
    if (result.error) delivery.error = result.error;
    await this.record(this.channel.id, delivery).catch((err: unknown) =>
      this.logger.warn('alert channel delivery not logged', { channelId: this.channel.id, err }),
    );
  }

  private destination(credentials: ChannelCredentials): { url: string; policy: OutboundPolicy | undefined } {
    const { type, id } = this.channel;
    if (type === 'pagerduty') return { url: this.settings.pagerDutyUrl, policy: undefined };
    // A webhook's URL is its item's (shown in listings); a Slack URL is a credential, sealed.
    const url = type === 'webhook' ? this.channel.url : credentials.url;
    if (!url) throw new Error(`alert channel ${id} has no url`);
    return { url, policy: this.settings.policy };
  }

  private request(message: ChannelMessage, nowMs: number, credentials: ChannelCredentials): ChannelRequest {
    const { messages } = this.settings;
    switch (this.channel.type) {
      case 'webhook': {
        const body = webhookBody(message, messages);
        if (!credentials.secret) throw new Error(`webhook channel ${this.channel.id} has no secret`);
        return { body, headers: standardWebhookHeaders(message.id, body, credentials.secret, nowMs) };
      }
      case 'slack':
        return { body: slackBody(message, messages), headers: {} };
      case 'pagerduty':
        if (!credentials.routingKey)
          throw new Error(`pagerduty channel ${this.channel.id} has no routing key`);
        return { body: pagerDutyBody(message, credentials.routingKey, messages), headers: {} };
    }
  }
}

/** No answer (but not refused), timeouts, throttling and server faults are worth retrying. */
function isRetryable(result: ChannelTestResult): boolean {
  const status = result.statusCode;
  if (status === undefined) return !result.error?.startsWith('refused:');
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** The answer as text a log or a JSON response can carry: control characters dropped, bounded. */
function printable(body: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: dropping control characters is the point
  const text = body.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '').slice(0, 1_024);
  return text === '' ? undefined : text;
}

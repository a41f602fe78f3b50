/**
 * The sweeper's dependencies from configuration, shared by the scheduled Lambda and `npm start`:
 * the status store, and the sinks (the log always; SNS with `ALERT_TOPIC_ARN`; the webhook with
 * `ALERT_WEBHOOK_URL`, signed with `ALERT_WEBHOOK_SECRET` or the secret the caller provides), and
 * the workspaces' alert channels, whose sealed credentials open with the key in the secret store.
 */
import { SNSClient } from '@aws-sdk/client-sns';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { AlertSink } from '../../shared/alerts/alert-sink';
import { ChannelCredentialSealer } from '../../shared/alerts/channel-credentials';
import { channelSettingsFrom, StoredChannelSinks } from '../../shared/alerts/channel-sink';
import { LogAlertSink } from '../../shared/alerts/log-sink';
import { SnsAlertSink } from '../../shared/alerts/sns-sink';
import { WebhookAlertSink } from '../../shared/alerts/webhook-sink';
import type { Env } from '../../shared/config';
import { ConfigError } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import type { SecretStore } from '../../shared/secrets/secret-store';
import { statusSettingsFrom } from '../../shared/status';
import { DynamoAlertChannelStore } from '../../shared/store/dynamo-alert-channels';
import { DynamoStatusStore } from '../../shared/store/dynamo-status-store';
import { DELIVERY_DEFAULTS, type DeliverySettings, type SweepDeps } from './sweep';

export interface SweeperWiring {
  doc: DynamoDBDocumentClient;
  logger: Logger;
  /**
   * Where the alert channel key is (Secrets Manager in AWS, DATA_DIR locally): read on the first
   * send to a sealed channel, then kept. Never created here: the API makes it with the first channel.
   */
  secrets: SecretStore;
  /** Defaults to a client for `AWS_REGION`, created only when `ALERT_TOPIC_ARN` is set. */
  sns?: SNSClient;
  /** Overrides `ALERT_WEBHOOK_SECRET` (`npm start` passes the one it keeps in `DATA_DIR`). */
  webhookSecret?: string;
  /** `ALLOW_PRIVATE_SSH_HOSTS` when unset, for alert channel URLs: `npm start` allows them, AWS does not. */
  allowPrivateTargetsByDefault?: boolean;
}

export function sweepDepsFromEnv(env: Env, wiring: SweeperWiring): SweepDeps {
  const logger = wiring.logger.child({ component: 'sweeper' });
  const sinks: AlertSink[] = [new LogAlertSink(logger)];
  if (env.ALERT_TOPIC_ARN) {
    const client = wiring.sns ?? new SNSClient({ region: env.AWS_REGION });
    sinks.push(new SnsAlertSink(client, env.ALERT_TOPIC_ARN));
  }
  if (env.ALERT_WEBHOOK_URL) {
    const secret = wiring.webhookSecret ?? env.ALERT_WEBHOOK_SECRET;
    if (!secret) {
      throw new ConfigError(
        'invalid configuration: ALERT_WEBHOOK_SECRET: required with ALERT_WEBHOOK_URL (it signs every alert)',
      );
    }
    sinks.push(new WebhookAlertSink({ url: env.ALERT_WEBHOOK_URL, secret }));
  }
  const channelStore = new DynamoAlertChannelStore(wiring.doc, env.TABLE_NAME);
  const channelSettings = channelSettingsFrom(env, wiring.allowPrivateTargetsByDefault ?? false);
  return {
    store: new DynamoStatusStore(wiring.doc, env.TABLE_NAME),
    sinks,
    channels: new StoredChannelSinks(
      channelStore,
      new ChannelCredentialSealer(wiring.secrets, 'read'),
      channelSettings,
      logger,
    ),
    logger,
    settings: statusSettingsFrom(env),
    intervalMs: env.SWEEP_INTERVAL_MS,
    delivery: deliveryFrom(env),
  };
}

/**
 * Retries happen on sweeps, so their backoff is counted in sweeps: from half an interval (the
 * next sweep) doubling to ten intervals, at most 10 minutes. With the default minute that is
 * 30 s to 10 min; with a test stack's short interval, retries follow as quickly.
 */
export function deliveryFrom(env: Pick<Env, 'SWEEP_INTERVAL_MS'>): Partial<DeliverySettings> {
  return {
    retryBaseMs: Math.max(1, Math.floor(env.SWEEP_INTERVAL_MS / 2)),
    retryMaxMs: Math.min(DELIVERY_DEFAULTS.retryMaxMs, 10 * env.SWEEP_INTERVAL_MS),
  };
}

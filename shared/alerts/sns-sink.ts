/**
 * Alerts published to an SNS topic (on-call subscribes to it). The message is the contract's alert
 * object as JSON; attributes carry type and ids for subscription filter policies. A FIFO topic
 * also gets the alert id as deduplication id, so SNS itself drops a re-publish within 5 minutes.
 */
import { createHash } from 'node:crypto';
import { PublishCommand, type PublishCommandInput, type SNSClient } from '@aws-sdk/client-sns';
import { AlertDeliveryError } from '../errors';
import type { AlertDelivery, AlertSink } from './alert-sink';
import { type RetryPolicy, type Sleep, withRetries } from './retry';

export interface SnsSinkOptions {
  retry?: RetryPolicy;
  sleep?: Sleep;
  random?: () => number;
}

/**
 * On top of the SDK's own retries (which a throttled account can exhaust): 3 attempts with up to
 * 1 s and 2 s of backoff.
 */
export const SNS_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 1_000, maxDelayMs: 8_000 };

/** Failures worth another attempt: throttling, server faults, and errors without an answer. */
const RETRYABLE_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'KMSThrottlingException',
  'InternalError',
  'InternalErrorException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

export class SnsAlertSink implements AlertSink {
  readonly name = 'sns';

  constructor(
    private readonly client: SNSClient,
    private readonly topicArn: string,
    private readonly options: SnsSinkOptions = {},
  ) {}

  async send({ id, body, signal }: AlertDelivery): Promise<void> {
    const input: PublishCommandInput = {
      TopicArn: this.topicArn,
      Message: JSON.stringify(body),
      Subject: subject(body.type, body.tunnel.name),
      MessageAttributes: {
        type: { DataType: 'String', StringValue: body.type },
        tunnelId: { DataType: 'String', StringValue: body.tunnel.id },
        workspaceId: { DataType: 'String', StringValue: body.tunnel.workspaceId },
      },
    };
    if (this.topicArn.endsWith('.fifo')) {
      input.MessageGroupId = body.tunnel.id;
      input.MessageDeduplicationId = createHash('sha256').update(id).digest('hex');
    }
    await withRetries(
      async () => {
        try {
          await this.client.send(new PublishCommand(input), signal ? { abortSignal: signal } : {});
        } catch (err) {
          throw new AlertDeliveryError(this.name, id, isRetryable(err), describe(err), { cause: err });
        }
      },
      {
        policy: this.options.retry ?? SNS_RETRY,
        isRetryable: (err) => err instanceof AlertDeliveryError && err.retryable,
        sleep: this.options.sleep,
        random: this.options.random,
        signal,
      },
    );
  }
}

function isRetryable(err: unknown): boolean {
  if (!(err instanceof Error)) return true;
  const meta = (err as { $metadata?: { httpStatusCode?: number }; $retryable?: unknown }).$metadata;
  if (RETRYABLE_NAMES.has(err.name) || (err as { $retryable?: unknown }).$retryable) return true;
  const status = meta?.httpStatusCode;
  // No HTTP status at all: the request never got an answer (network, timeout).
  return status === undefined || status === 429 || status >= 500;
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** SNS subjects: printable ASCII, no line breaks, under 100 characters. */
function subject(type: string, tunnelName: string): string {
  const name = tunnelName.replace(/[^\x20-\x7e]/g, '?');
  return `Tunnelkeeper ${type}: ${name}`.slice(0, 99);
}

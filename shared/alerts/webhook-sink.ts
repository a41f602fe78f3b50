/**
 * Alerts POSTed as JSON to `ALERT_WEBHOOK_URL`. The body is exactly the contract's alert object;
 * `X-Tunnelkeeper-Signature: sha256=<hex>` is the HMAC-SHA256 of those raw bytes under the shared
 * secret, so a receiver verifies before it parses.
 *
 * No timestamp is signed, deliberately: the signed body already carries its alert's `at` and
 * identifies the alert (tunnel id, type, at), so a replayed request is indistinguishable from one
 * of our own retries and is absorbed the same way, by de-duplicating on that identity (also sent,
 * for convenience, as `X-Tunnelkeeper-Alert-Id`). A signed delivery timestamp would only let
 * receivers reject late retries, which the outbox makes on purpose.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { AlertDeliveryError } from '../errors';
import type { AlertDelivery, AlertSink } from './alert-sink';
import { type RetryPolicy, type Sleep, withRetries } from './retry';

export const SIGNATURE_HEADER = 'X-Tunnelkeeper-Signature';
export const ALERT_ID_HEADER = 'X-Tunnelkeeper-Alert-Id';

export interface WebhookSinkOptions {
  url: string;
  secret: string;
  /** Per attempt, connection and response included. */
  timeoutMs?: number;
  retry?: RetryPolicy;
  fetch?: typeof fetch;
  sleep?: Sleep;
  random?: () => number;
}

/** 3 attempts of at most 5 s, with at most 0.5 s and 1 s of backoff: ≤ 17 s per alert. */
export const WEBHOOK_DEFAULTS = {
  timeoutMs: 5_000,
  retry: { attempts: 3, baseDelayMs: 500, maxDelayMs: 4_000 } satisfies RetryPolicy,
};

/** `sha256=<hex HMAC-SHA256 of body>`, the value of `X-Tunnelkeeper-Signature`. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** What a receiver does: compare the header with the body's signature in constant time. */
export function verifySignature(body: string, header: string | undefined, secret: string): boolean {
  if (!header) return false;
  const expected = Buffer.from(signBody(body, secret));
  const given = Buffer.from(header);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export class WebhookAlertSink implements AlertSink {
  readonly name = 'webhook';
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly fetch: typeof fetch;

  constructor(private readonly options: WebhookSinkOptions) {
    this.timeoutMs = options.timeoutMs ?? WEBHOOK_DEFAULTS.timeoutMs;
    this.retry = options.retry ?? WEBHOOK_DEFAULTS.retry;
    this.fetch = options.fetch ?? fetch;
  }

  async send({ id, body, signal }: AlertDelivery): Promise<void> {
    const payload = JSON.stringify(body);
    const headers = {
      'Content-Type': 'application/json',
      'User-Agent': 'tunnelkeeper-alerts/1',
      [SIGNATURE_HEADER]: signBody(payload, this.options.secret),
      [ALERT_ID_HEADER]: id,
    };
    await withRetries(() => this.attempt(id, payload, headers, signal), {
      policy: this.retry,
      isRetryable: (err) => err instanceof AlertDeliveryError && err.retryable,
      sleep: this.options.sleep,
      random: this.options.random,
      signal,
    });
  }

  private async attempt(
    id: string,
    payload: string,
    headers: Record<string, string>,
    stop: AbortSignal | undefined,
  ): Promise<void> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    let res: Response;
    try {
      res = await this.fetch(this.options.url, {
        method: 'POST',
        headers,
        body: payload,
        // A redirect could carry the signed alert elsewhere: treat it as a failure instead.
        redirect: 'manual',
        signal: stop ? AbortSignal.any([timeout, stop]) : timeout,
      });
    } catch (err) {
      const why = timeout.aborted ? `no response within ${this.timeoutMs} ms` : describe(err);
      throw new AlertDeliveryError(this.name, id, true, why, { cause: err });
    }
    // Free the connection; the receiver's answer carries nothing we use.
    await res.body?.cancel().catch(() => {});
    if (res.status >= 200 && res.status < 300) return;
    const retryable = res.status === 408 || res.status === 425 || res.status === 429 || res.status >= 500;
    throw new AlertDeliveryError(this.name, id, retryable, `receiver answered HTTP ${res.status}`);
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

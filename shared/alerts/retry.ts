/** Bounded retries with exponential backoff and jitter, with time (sleep, random) injectable. */
import { setTimeout as delay } from 'node:timers/promises';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const realSleep: Sleep = (ms, signal) => delay(ms, undefined, signal ? { signal } : undefined);

/**
 * Delay before retry number `retry` (1 for the first retry): "full jitter", uniform in
 * [0, min(max, base × 2^(retry-1))], so clients that failed together do not retry together.
 */
export function backoffDelay(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.floor(random() * ceiling);
}

export interface RetryOptions {
  policy: RetryPolicy;
  isRetryable(err: unknown): boolean;
  sleep?: Sleep;
  random?: () => number;
  signal?: AbortSignal;
}

/** Runs `attempt(n)` (n from 1) until it resolves, a failure is not retryable, or attempts run out. */
export async function withRetries<T>(attempt: (n: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const sleep = options.sleep ?? realSleep;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (n >= options.policy.attempts || !options.isRetryable(err) || options.signal?.aborted) throw err;
      // Stopping during the pause ends the retries with the failure that caused them.
      await sleep(backoffDelay(n, options.policy, options.random), options.signal).catch(() => {
        throw err;
      });
    }
  }
}

import { describe, expect, it } from 'vitest';
import { backoffDelay, type RetryPolicy, withRetries } from '../../../shared/alerts/retry';

const POLICY: RetryPolicy = { attempts: 4, baseDelayMs: 100, maxDelayMs: 300 };

describe('backoffDelay', () => {
  it.each([
    [1, 0.999, 99],
    [2, 0.999, 199],
    [3, 0.999, 299],
    [10, 0.999, 299],
    [1, 0, 0],
    [3, 0.5, 150],
  ])('retry %i at random %d waits %i ms', (retry, random, expected) => {
    expect(backoffDelay(retry, POLICY, () => random)).toBe(expected);
  });
});

describe('withRetries', () => {
  const sleeps: number[] = [];
  const sleep = async (ms: number) => {
    sleeps.push(ms);
  };

  it('retries retryable failures until it succeeds, sleeping between attempts', async () => {
    sleeps.length = 0;
    let calls = 0;
    const value = await withRetries(
      async (n) => {
        calls++;
        if (n < 3) throw new Error('flaky');
        return 'ok';
      },
      { policy: POLICY, isRetryable: () => true, sleep, random: () => 0.5 },
    );
    expect(value).toBe('ok');
    expect(calls).toBe(3);
    expect(sleeps).toEqual([50, 100]);
  });

  it.each([
    ['a failure that is not retryable: one attempt', () => false, 1],
    ['a retryable failure that persists: every attempt, then the last error', () => true, 4],
  ])('%s', async (_, isRetryable, attempts) => {
    let calls = 0;
    const err = await withRetries(
      async (n) => {
        calls++;
        throw new Error(`attempt ${n}`);
      },
      { policy: POLICY, isRetryable, sleep },
    ).catch((e: unknown) => e);
    expect(calls).toBe(attempts);
    expect((err as Error).message).toBe(`attempt ${attempts}`);
  });

  it('ends with the failure, not an abort error, when stopped while waiting', async () => {
    const stop = new AbortController();
    let calls = 0;
    const err = await withRetries(
      async () => {
        calls++;
        stop.abort();
        throw new Error('receiver down');
      },
      {
        policy: { attempts: 5, baseDelayMs: 60_000, maxDelayMs: 60_000 },
        isRetryable: () => true,
        signal: stop.signal,
      },
    ).catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect((err as Error).message).toBe('receiver down');
  });
});

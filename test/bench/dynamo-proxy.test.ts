/** The bench's wait for a sweep's burst of DynamoDB requests to pass, against a scripted proxy. */
import { describe, expect, it } from 'vitest';
import { afterBurstOf, type CountingProxy } from '../../bench/support/dynamo-proxy';

/** A proxy whose BatchGetItem count over the last second follows `countAt(ms since start)`. */
function scriptedProxy(countAt: (elapsedMs: number) => number): CountingProxy {
  const started = Date.now();
  return {
    endpoint: 'http://127.0.0.1:0',
    countsBetween: () => ({ BatchGetItem: countAt(Date.now() - started), PutItem: 3 }),
    lastOf: () => 0,
    close: async () => {},
  };
}

describe('afterBurstOf', () => {
  it('returns once a burst has come and gone, not before it starts', async () => {
    const proxy = scriptedProxy((ms) => (ms < 500 ? 1 : ms < 1_200 ? 8 : 0));
    const waited = await afterBurstOf(proxy, 'BatchGetItem', 5, 10_000);
    expect(waited).toBeGreaterThanOrEqual(1_200);
    expect(waited).toBeLessThan(2_500);
  });

  it('ignores other operations and gives up after the timeout when no burst comes', async () => {
    const proxy = scriptedProxy(() => 2);
    const waited = await afterBurstOf(proxy, 'BatchGetItem', 5, 800);
    expect(waited).toBeGreaterThanOrEqual(800);
    expect(waited).toBeLessThan(1_500);
  });
});

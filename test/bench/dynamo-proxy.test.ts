/**
 * The counting proxy in front of DynamoDB Local: cut and restored against the run's real DynamoDB
 * Local, and the bench's wait for a sweep's burst of requests to pass, against a scripted proxy.
 */
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { afterBurstOf, type CountingProxy, startCountingProxy } from '../../bench/support/dynamo-proxy';
import { StorageUnavailableError } from '../../shared/errors';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { outageReason } from '../../shared/store/storage-outage';

/** A proxy whose BatchGetItem count over the last second follows `countAt(ms since start)`. */
function scriptedProxy(countAt: (elapsedMs: number) => number): CountingProxy {
  const started = Date.now();
  return {
    endpoint: 'http://127.0.0.1:0',
    countsBetween: () => ({ BatchGetItem: countAt(Date.now() - started), PutItem: 3 }),
    lastOf: () => 0,
    cut: async () => {},
    restore: async () => {},
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

describe('cutting the proxy', () => {
  /** ListTables through the proxy: 'ok', or the error the SDK gives up with. */
  async function listTables(endpoint: string, timeoutMs: number): Promise<'ok' | unknown> {
    const { client } = createDynamoClients({ region: 'us-east-1', endpoint });
    try {
      await client.send(new ListTablesCommand({}), { abortSignal: AbortSignal.timeout(timeoutMs) });
      return 'ok';
    } catch (err) {
      return err;
    } finally {
      client.destroy();
    }
  }

  it('refuses connections like a killed DynamoDB Local, then serves again on the same endpoint', async () => {
    const proxy = await startCountingProxy(inject('dynamoEndpoint'));
    try {
      expect(await listTables(proxy.endpoint, 10_000)).toBe('ok');
      await proxy.cut('refuse');
      const err = await listTables(proxy.endpoint, 10_000);
      expect(err).toBeInstanceOf(StorageUnavailableError);
      expect(outageReason(err)).toBe('unreachable');
      expect((err as Error).cause).toMatchObject({ code: 'ECONNREFUSED' });
      await proxy.restore();
      expect(await listTables(proxy.endpoint, 10_000)).toBe('ok');
    } finally {
      await proxy.close();
    }
  });

  it('holds requests without an answer while blackholed, and lets them fail on restore', async () => {
    const proxy = await startCountingProxy(inject('dynamoEndpoint'));
    try {
      await proxy.cut('blackhole');
      const started = Date.now();
      const err = await listTables(proxy.endpoint, 500);
      expect(Date.now() - started).toBeGreaterThanOrEqual(450);
      expect(err).toMatchObject({ name: 'AbortError' }); // no answer: given up by the caller
      const pending = listTables(proxy.endpoint, 20_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await proxy.restore();
      // The held request was dropped; the SDK's retry reaches DynamoDB again.
      expect(await pending).toBe('ok');
    } finally {
      await proxy.close();
    }
  });
});

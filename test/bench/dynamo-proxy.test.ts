/**
 * The counting proxy in front of DynamoDB Local: cut and restored, and metering, against the run's
 * real DynamoDB Local; the bench's wait for the stack's writes to settle, against a scripted proxy.
 */
import { ConditionalCheckFailedException, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { afterWritesSettle, type CountingProxy, startCountingProxy } from '../../bench/support/dynamo-proxy';
import { StorageUnavailableError } from '../../shared/errors';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { outageReason } from '../../shared/store/storage-outage';
import { createTestTable } from '../helpers/dynamo';

/** A scripted proxy whose BatchGetItem count follows `countAt(ms since start)`. */
function scriptedProxy(countAt: (elapsedMs: number) => number): CountingProxy {
  const started = Date.now();
  return {
    endpoint: 'http://127.0.0.1:0',
    countsBetween: () => ({ BatchGetItem: countAt(Date.now() - started), PutItem: 3 }),
    usageBetween: () => {
      throw new Error('not metered');
    },
    answered: async () => {},
    lastOf: () => 0,
    cut: async () => {},
    restore: async () => {},
    close: async () => {},
  };
}

describe('afterWritesSettle', () => {
  /** A proxy whose writes over the last two seconds follow `writesAt(ms since start)`. */
  function writingProxy(writesAt: (elapsedMs: number) => number): CountingProxy {
    const started = Date.now();
    return {
      ...scriptedProxy(() => 0),
      countsBetween: () => ({ PutItem: writesAt(Date.now() - started), Query: 50 }),
    };
  }

  it('returns once writes fall to the quiet rate, however many reads go on', async () => {
    const waited = await afterWritesSettle(
      writingProxy((ms) => (ms < 2_500 ? 40 : 3)),
      2,
      10_000,
    );
    expect(waited).toBeGreaterThanOrEqual(2_500);
    expect(waited).toBeLessThan(4_000);
  });

  it('gives up after the timeout while writes go on', async () => {
    const waited = await afterWritesSettle(
      writingProxy(() => 40),
      2,
      3_000,
    );
    expect(waited).toBeGreaterThanOrEqual(3_000);
    expect(waited).toBeLessThan(4_000);
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

describe('metering', () => {
  it('reports the request units DynamoDB consumed and the items read and written', async () => {
    const table = await createTestTable();
    const proxy = await startCountingProxy(table.endpoint, { meter: true });
    const { client, doc } = createDynamoClients({ region: 'us-east-1', endpoint: proxy.endpoint });
    try {
      const TableName = table.tableName;
      const from = Date.now();
      await doc.send(new PutCommand({ TableName, Item: { pk: 'A', sk: 'META', n: 1 } }));
      await doc.send(new PutCommand({ TableName, Item: { pk: 'B', sk: 'META', big: 'x'.repeat(2_500) } }));
      await doc.send(new GetCommand({ TableName, Key: { pk: 'A', sk: 'META' } }));
      await doc.send(new GetCommand({ TableName, Key: { pk: 'A', sk: 'META' }, ConsistentRead: true }));
      await doc.send(
        new BatchGetCommand({
          RequestItems: {
            [TableName]: { Keys: ['A', 'B', 'missing'].map((pk) => ({ pk, sk: 'META' })) },
          },
        }),
      );
      const refused = await doc
        .send(
          new PutCommand({
            TableName,
            Item: { pk: 'A', sk: 'META' },
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        )
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      expect(refused).toBeInstanceOf(ConditionalCheckFailedException);
      await client.send(new ListTablesCommand({}));
      const to = Date.now();
      await proxy.answered(to, 5_000);
      expect(proxy.usageBetween(from, to)).toEqual({
        requests: { PutItem: 3, GetItem: 2, BatchGetItem: 1, ListTables: 1 },
        // 1 KB per write unit: 1 + 3; the refused write estimated at 1.
        writeUnits: 1 + 3 + 1,
        // 4 KB per read unit, half when eventually consistent: 0.5 + 1, then 0.5 × 3 in the batch
        // (DynamoDB Local reports 0 for the missing key, DynamoDB bills it: raised to the floor).
        readUnits: 0.5 + 1 + 1.5,
        itemsRead: 1 + 1 + 3,
        itemsWritten: 3,
        estimatedWrites: 1,
        raisedReads: 1,
        unmetered: 0,
      });
    } finally {
      client.destroy();
      await proxy.close();
      await table.drop();
    }
  });
});

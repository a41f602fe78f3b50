import { randomInt } from 'node:crypto';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';

const BATCH_SIZE = 100; // BatchGetItem's maximum
const WRITE_BATCH_SIZE = 25; // BatchWriteItem's maximum
const MAX_RETRIES = 8;

/** BatchGetItem over any number of keys, in chunks, retrying unprocessed keys with jittered backoff. */
export async function batchGetItems(
  db: DynamoDBDocumentClient,
  tableName: string,
  allKeys: Record<string, string>[],
): Promise<Record<string, unknown>[]> {
  const found: Record<string, unknown>[] = [];
  for (let i = 0; i < allKeys.length; i += BATCH_SIZE) {
    let pending: Record<string, unknown>[] | undefined = allKeys.slice(i, i + BATCH_SIZE);
    for (let attempt = 0; pending && pending.length > 0; attempt++) {
      if (attempt > MAX_RETRIES)
        throw new Error(`DynamoDB left keys unprocessed after ${MAX_RETRIES} retries`);
      if (attempt > 0) await backoff(attempt);
      const out: BatchGetCommandOutput = await db.send(
        new BatchGetCommand({ RequestItems: { [tableName]: { Keys: pending, ConsistentRead: true } } }),
      );
      found.push(...(out.Responses?.[tableName] ?? []));
      pending = out.UnprocessedKeys?.[tableName]?.Keys;
    }
  }
  return found;
}

/** BatchWriteItem deletes over any number of keys, in chunks, retrying unprocessed ones likewise. */
export async function batchDeleteItems(
  db: DynamoDBDocumentClient,
  tableName: string,
  allKeys: Record<string, string>[],
): Promise<void> {
  for (let i = 0; i < allKeys.length; i += WRITE_BATCH_SIZE) {
    type Requests = NonNullable<BatchWriteCommandOutput['UnprocessedItems']>[string];
    let pending: Requests | undefined = allKeys
      .slice(i, i + WRITE_BATCH_SIZE)
      .map((Key) => ({ DeleteRequest: { Key } }));
    for (let attempt = 0; pending && pending.length > 0; attempt++) {
      if (attempt > MAX_RETRIES)
        throw new Error(`DynamoDB left writes unprocessed after ${MAX_RETRIES} retries`);
      if (attempt > 0) await backoff(attempt);
      const out: BatchWriteCommandOutput = await db.send(
        new BatchWriteCommand({ RequestItems: { [tableName]: pending } }),
      );
      pending = out.UnprocessedItems?.[tableName];
    }
  }
}

function backoff(attempt: number): Promise<void> {
  const cap = Math.min(1000, 25 * 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, randomInt(Math.floor(cap / 2), cap + 1)));
}

/**
 * The table's log of changes to tunnel records (`CHANGES#<bucket>` items, one per update or delete
 * of a tunnel's META, written in the same transaction): how every gateway learns that a tunnel it
 * carries was disabled, deleted or had its keys changed, at a cost that follows changes. Without
 * it each gateway would read every held tunnel with every heartbeat. Items expire after a day; a
 * reader that was away longer reads every held tunnel instead.
 */
import { type DynamoDBDocumentClient, QueryCommand, type QueryCommandOutput } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { TTL_ATTRIBUTE } from './table';

/** How long changes stay readable. */
export const CHANGE_RETENTION_MS = 24 * 60 * 60 * 1000;
/** Changes of ten minutes share a partition: a reader queries one or two per poll. */
const BUCKET_MS = 10 * 60 * 1000;

const bucketOf = (atMs: number) => Math.floor(atMs / BUCKET_MS);
const sortKeyOf = (atMs: number, suffix: string) => `${String(atMs).padStart(15, '0')}#${suffix}`;

/**
 * The item logging a change of `tunnelId` at `atMs`, for the transaction that makes the change:
 * `version` is the record's version it writes, absent for a delete.
 */
export function tunnelChangePut(tableName: string, tunnelId: string, atMs: number, version?: number) {
  return {
    Put: {
      TableName: tableName,
      Item: {
        pk: `CHANGES#${bucketOf(atMs)}`,
        sk: sortKeyOf(atMs, tunnelId),
        tunnelId,
        ...(version === undefined ? {} : { version }),
        [TTL_ATTRIBUTE]: Math.floor((atMs + CHANGE_RETENTION_MS) / 1000),
      },
    },
  };
}

const ChangeSchema = z.object({ tunnelId: z.string(), version: z.number().int().optional() });

/**
 * One logged change: a record of the tunnel older than `version` predates it. Without a version
 * (a delete, or an item logged before versions were), every record of it does.
 */
export interface TunnelChange {
  tunnelId: string;
  version?: number;
}

/** The changes logged from `sinceMs` (inclusive) to `untilMs` (exclusive), oldest first. */
export async function listTunnelChanges(
  db: DynamoDBDocumentClient,
  tableName: string,
  sinceMs: number,
  untilMs: number,
): Promise<TunnelChange[]> {
  const changes: TunnelChange[] = [];
  for (let bucket = bucketOf(sinceMs); bucket <= bucketOf(untilMs); bucket++) {
    let startKey: Record<string, unknown> | undefined;
    do {
      const out: QueryCommandOutput = await db.send(
        new QueryCommand({
          TableName: tableName,
          KeyConditionExpression: 'pk = :pk AND sk BETWEEN :from AND :to',
          ExpressionAttributeValues: {
            ':pk': `CHANGES#${bucket}`,
            ':from': sortKeyOf(sinceMs, ''),
            ':to': sortKeyOf(untilMs - 1, '\uffff'),
          },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of out.Items ?? []) {
        const change = ChangeSchema.safeParse(item);
        if (change.success) changes.push(change.data);
      }
      startKey = out.LastEvaluatedKey;
    } while (startKey);
  }
  return changes;
}

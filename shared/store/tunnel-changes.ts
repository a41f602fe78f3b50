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

/** The item logging a change of `tunnelId` at `atMs`, for the transaction that makes the change. */
export function tunnelChangePut(tableName: string, tunnelId: string, atMs: number) {
  return {
    Put: {
      TableName: tableName,
      Item: {
        pk: `CHANGES#${bucketOf(atMs)}`,
        sk: sortKeyOf(atMs, tunnelId),
        tunnelId,
        [TTL_ATTRIBUTE]: Math.floor((atMs + CHANGE_RETENTION_MS) / 1000),
      },
    },
  };
}

const ChangeSchema = z.object({ tunnelId: z.string() });

/** Ids of the tunnels changed from `sinceMs` (inclusive) to `untilMs` (exclusive), oldest first, each once. */
export async function listTunnelChanges(
  db: DynamoDBDocumentClient,
  tableName: string,
  sinceMs: number,
  untilMs: number,
): Promise<string[]> {
  const ids = new Set<string>();
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
        if (change.success) ids.add(change.data.tunnelId);
      }
      startKey = out.LastEvaluatedKey;
    } while (startKey);
  }
  return [...ids];
}

import { type DynamoDBDocumentClient, QueryCommand, type QueryCommandOutput } from '@aws-sdk/lib-dynamodb';
import { type WorkerHeartbeat, WorkerHeartbeatSchema } from '../gateway-items';
import { GSI2, WORKERS_PARTITION } from './table';

/** Every item of an index partition, following pagination. */
export async function queryAll(
  db: DynamoDBDocumentClient,
  tableName: string,
  index: string,
  condition: string,
  values: Record<string, string>,
): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const out: QueryCommandOutput = await db.send(
      new QueryCommand({
        TableName: tableName,
        IndexName: index,
        KeyConditionExpression: condition,
        ExpressionAttributeValues: values,
        ExclusiveStartKey: startKey,
      }),
    );
    items.push(...(out.Items ?? []));
    startKey = out.LastEvaluatedKey;
  } while (startKey);
  return items;
}

/** Every worker's latest heartbeat (fresh or not): one query of GSI2's `WORKERS` partition. */
export async function listWorkerHeartbeats(
  db: DynamoDBDocumentClient,
  tableName: string,
): Promise<WorkerHeartbeat[]> {
  const items = await queryAll(db, tableName, GSI2, 'gsi2pk = :p', { ':p': WORKERS_PARTITION });
  return items.map((item) => WorkerHeartbeatSchema.parse(item));
}

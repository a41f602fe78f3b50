/** `GatewayStore` on the single table (keys in `table.ts`). */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { type TunnelStateItem, type WorkerHeartbeat, WorkerHeartbeatSchema } from '../gateway-items';
import { type TunnelRecord, TunnelRecordSchema } from '../tunnel';
import { batchGetItems } from './batch-get';
import type { GatewayStore } from './gateway-store';
import { keys, TTL_ATTRIBUTE } from './table';

export class DynamoGatewayStore implements GatewayStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async getTunnelById(id: string): Promise<TunnelRecord | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.tunnel(id), ConsistentRead: true }),
    );
    return Item ? TunnelRecordSchema.parse(Item) : undefined;
  }

  async getTunnelsByIds(ids: string[]): Promise<Map<string, TunnelRecord>> {
    const items = await batchGetItems(this.db, this.tableName, ids.map(keys.tunnel));
    return new Map(items.map((item) => TunnelRecordSchema.parse(item)).map((r) => [r.id, r]));
  }

  async writeState(tunnelId: string, item: TunnelStateItem): Promise<boolean> {
    // up: only over the state of the same or an older connection. down: only over our own
    // connection's state. Either way only while the tunnel exists, so a late write cannot
    // resurrect state for a deleted tunnel.
    const ownership =
      item.state === 'up'
        ? 'attribute_not_exists(connectedAt) OR connectedAt <= :connectedAt'
        : 'attribute_not_exists(connId) OR connId = :connId';
    const values =
      item.state === 'up' ? { ':connectedAt': item.connectedAt ?? '' } : { ':connId': item.connId ?? '' };
    try {
      await this.db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: this.tableName,
                Key: keys.tunnel(tunnelId),
                ConditionExpression: 'attribute_exists(pk)',
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: { ...keys.tunnelState(tunnelId), ...item },
                ConditionExpression: ownership,
                ExpressionAttributeValues: values,
              },
            },
          ],
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof TransactionCanceledException) return false;
      throw err;
    }
  }

  async retirePreviousKey(tunnelId: string, previousPublicKey: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.tunnel(tunnelId),
          UpdateExpression: 'REMOVE previousPublicKey SET version = version + :one',
          ConditionExpression: 'previousPublicKey = :old',
          ExpressionAttributeValues: { ':old': previousPublicKey, ':one': 1 },
        }),
      );
    } catch (err) {
      if (!(err instanceof Error && err.name === 'ConditionalCheckFailedException')) throw err;
    }
  }

  async putHeartbeat(beat: WorkerHeartbeat, ttlSeconds: number): Promise<void> {
    const expiresAt = Math.floor(Date.parse(beat.lastBeatAt) / 1000) + ttlSeconds;
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...keys.worker(beat.workerId), ...beat, [TTL_ATTRIBUTE]: expiresAt },
      }),
    );
  }

  async getHeartbeats(workerIds: string[]): Promise<Map<string, WorkerHeartbeat>> {
    const items = await batchGetItems(this.db, this.tableName, [...new Set(workerIds)].map(keys.worker));
    return new Map(items.map((item) => WorkerHeartbeatSchema.parse(item)).map((b) => [b.workerId, b]));
  }
}

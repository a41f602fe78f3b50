/**
 * Alert channels and their delivery log on the single table. A channel is `WS#<ws>/CHANNEL#<id>`
 * (so a workspace's channels are one query, and another workspace's id is simply not found), counted
 * in `WS#<ws>/CHANNELS` against the quota in the same transaction. Each delivery attempt is an item
 * `CHANNEL#<id>/DELIVERY#<at>#<random>` that DynamoDB's TTL deletes after 30 days.
 *
 * The channel's credentials (webhook secret, Slack URL, PagerDuty routing key) are in the item only
 * sealed (`sealedCredentials`, AES-256-GCM under the alert channel key from the secret store:
 * shared/alerts/sealed-credentials.ts), so the table and its backups hold none in clear; the API
 * seals them at create, the API's test and the sweeper's sends open them. What a listing shows of
 * them (`target`: a Slack URL's origin, a routing key's start) is stored beside. Items written
 * before sealing hold them in clear and are read as they are (shared/alerts/channel-credentials.ts).
 * This module neither seals nor opens: it stores what it is given, and `createChannel` writes no
 * field that could carry a credential in clear.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import {
  type AlertChannelRecord,
  AlertChannelRecordSchema,
  type ChannelDelivery,
  ChannelDeliverySchema,
  type SealedAlertChannel,
} from '../alerts/channel-schemas';
import { NotFoundError, QuotaExceededError } from '../errors';
import { cancelledBy, isTransactionConflict } from './dynamo-errors';
import { keys, TTL_ATTRIBUTE } from './table';

/** The delivery log keeps each attempt this long (issue 16: 30 days). */
export const DELIVERY_RETENTION_DAYS = 30;
const DELIVERY_SK_PREFIX = 'DELIVERY#';
const CHANNEL_SK_PREFIX = 'CHANNEL#';
const TRANSACT_ATTEMPTS = 4;

type TransactItems = NonNullable<TransactWriteCommandInput['TransactItems']>;

export interface AlertChannelStore {
  /** `QuotaExceededError` when the workspace holds `max` channels already. */
  createChannel(record: SealedAlertChannel, max: number): Promise<void>;
  /** Every channel of the workspace, oldest first (at most the quota's worth). Unreadable items are skipped. */
  listChannels(workspaceId: string): Promise<AlertChannelRecord[]>;
  getChannel(workspaceId: string, id: string): Promise<AlertChannelRecord | undefined>;
  /** `NotFoundError` when the workspace has no such channel. */
  deleteChannel(workspaceId: string, id: string): Promise<void>;
  recordDelivery(channelId: string, delivery: ChannelDelivery): Promise<void>;
  /** Newest first. */
  listDeliveries(channelId: string, limit: number): Promise<ChannelDelivery[]>;
}

export class DynamoAlertChannelStore implements AlertChannelStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async createChannel(record: SealedAlertChannel, max: number): Promise<void> {
    try {
      await this.transact([
        {
          Update: {
            TableName: this.tableName,
            Key: keys.alertChannelCount(record.workspaceId),
            UpdateExpression: 'SET #count = if_not_exists(#count, :zero) + :one',
            ConditionExpression: 'attribute_not_exists(#count) OR #count < :max',
            ExpressionAttributeNames: { '#count': 'count' },
            ExpressionAttributeValues: { ':zero': 0, ':one': 1, ':max': max },
          },
        },
        {
          Put: {
            TableName: this.tableName,
            Item: { ...keys.alertChannel(record.workspaceId, record.id), ...channelItem(record) },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
      ]);
    } catch (err) {
      if (cancelledBy(err, 0)) {
        throw new QuotaExceededError(
          'alertChannelsPerWorkspace',
          max,
          `the workspace has reached its limit of ${max} alert channels; delete one first`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async listChannels(workspaceId: string): Promise<AlertChannelRecord[]> {
    const out = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': keys.workspace(workspaceId).pk, ':prefix': CHANNEL_SK_PREFIX },
        // Bounded by the quota (at most 1,000): one page.
        Limit: 1_000,
      }),
    );
    const channels = (out.Items ?? []).flatMap((item) => {
      const parsed = AlertChannelRecordSchema.safeParse(item);
      return parsed.success ? [parsed.data] : [];
    });
    return channels.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  }

  async getChannel(workspaceId: string, id: string): Promise<AlertChannelRecord | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.alertChannel(workspaceId, id) }),
    );
    if (!Item) return undefined;
    return AlertChannelRecordSchema.parse(Item);
  }

  async deleteChannel(workspaceId: string, id: string): Promise<void> {
    try {
      await this.transact([
        {
          Delete: {
            TableName: this.tableName,
            Key: keys.alertChannel(workspaceId, id),
            ConditionExpression: 'attribute_exists(pk)',
          },
        },
        {
          Update: {
            TableName: this.tableName,
            Key: keys.alertChannelCount(workspaceId),
            UpdateExpression: 'SET #count = #count - :one',
            ConditionExpression: '#count > :zero',
            ExpressionAttributeNames: { '#count': 'count' },
            ExpressionAttributeValues: { ':zero': 0, ':one': 1 },
          },
        },
      ]);
    } catch (err) {
      if (cancelledBy(err, 0)) throw new NotFoundError('alert channel', id, { cause: err });
      throw err;
    }
  }

  /** One transaction, tried again (a few times, jittered) when it collided with a concurrent one on the counter. */
  private async transact(items: TransactItems): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.db.send(new TransactWriteCommand({ TransactItems: items }));
        return;
      } catch (err) {
        if (attempt >= TRANSACT_ATTEMPTS || !isTransactionConflict(err)) throw err;
        const cap = 20 * 2 ** attempt;
        await delay(Math.floor(cap / 2 + Math.random() * (cap / 2)));
      }
    }
  }

  async recordDelivery(channelId: string, delivery: ChannelDelivery): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          pk: keys.channelDeliveries(channelId),
          // Time first (newest-first queries); random after, so attempts of one instant all stay.
          sk: `${DELIVERY_SK_PREFIX}${delivery.at}#${randomBytes(4).toString('hex')}`,
          ...delivery,
          [TTL_ATTRIBUTE]: Math.floor(Date.parse(delivery.at) / 1000) + DELIVERY_RETENTION_DAYS * 86_400,
        },
      }),
    );
  }

  async listDeliveries(channelId: string, limit: number): Promise<ChannelDelivery[]> {
    const out = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: {
          ':pk': keys.channelDeliveries(channelId),
          ':prefix': DELIVERY_SK_PREFIX,
        },
        ScanIndexForward: false,
        Limit: limit,
      }),
    );
    return (out.Items ?? []).flatMap((item) => {
      const parsed = ChannelDeliverySchema.safeParse(item);
      return parsed.success ? [parsed.data] : [];
    });
  }
}

/**
 * The item's fields, named one by one rather than spread: whatever else the object carries at run
 * time, no clear credential reaches the table (a `url` only for a webhook, where it is the
 * destination shown in listings, not a credential).
 */
function channelItem(record: SealedAlertChannel): Record<string, unknown> {
  const item: Record<string, unknown> = {
    id: record.id,
    workspaceId: record.workspaceId,
    type: record.type,
    name: record.name,
    createdAt: record.createdAt,
    sealedCredentials: record.sealedCredentials,
  };
  if (record.type === 'webhook' && record.url !== undefined) item.url = record.url;
  if (record.target !== undefined) item.target = record.target;
  if (record.tunnelIds !== undefined) item.tunnelIds = record.tunnelIds;
  return item;
}

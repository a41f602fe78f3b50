/**
 * The single DynamoDB table: key names, item keys and its definition. The CDK stack declares the
 * same keys and indexes.
 */
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';

/** GSI1: a workspace's tunnels, newest first. GSI2: tunnels by shard, for the sweeper's fan-out. */
export const GSI1 = 'gsi1';
export const GSI2 = 'gsi2';
export const SHARD_COUNT = 16;
/** GSI2 partition listing every worker's heartbeat item. */
export const WORKERS_PARTITION = 'WORKERS';
/** GSI2 partition listing every workspace (oldest first), for the operator. */
export const WORKSPACES_PARTITION = 'WORKSPACES';
export const TTL_ATTRIBUTE = 'expiresAt';

export const keys = {
  workspace: (id: string) => ({ pk: `WS#${id}`, sk: 'META' }),
  /** What a workspace uses against its quotas (`tunnelCount`), kept with every create and delete. */
  workspaceUsage: (id: string) => ({ pk: `WS#${id}`, sk: 'USAGE' }),
  /** What authenticates: a key's hash → its workspace and key id. */
  apiKey: (hash: string) => ({ pk: `APIKEY#${hash}`, sk: 'META' }),
  /** A workspace's key as listed (prefix, dates) and revoked (by id → hash). */
  workspaceApiKey: (workspaceId: string, keyId: string) => ({ pk: `WS#${workspaceId}`, sk: `KEY#${keyId}` }),
  /** How many keys the workspace has (`count`): the last one cannot be revoked. */
  workspaceApiKeyCount: (workspaceId: string) => ({ pk: `WS#${workspaceId}`, sk: 'APIKEYS' }),
  tunnel: (id: string) => ({ pk: `TUNNEL#${id}`, sk: 'META' }),
  tunnelState: (id: string) => ({ pk: `TUNNEL#${id}`, sk: 'STATE' }),
  tunnelStatus: (id: string) => ({ pk: `TUNNEL#${id}`, sk: 'STATUS' }),
  tunnelLease: (id: string) => ({ pk: `TUNNEL#${id}`, sk: 'LEASE' }),
  /** What the gateways saw besides the state (tunnel-signals.ts): read for the status warnings. */
  tunnelSignals: (id: string) => ({ pk: `TUNNEL#${id}`, sk: 'SIGNALS' }),
  port: (port: number) => ({ pk: `PORT#${port}`, sk: 'META' }),
  worker: (id: string) => ({ pk: `WORKER#${id}`, sk: 'META' }),
  /** Per-tunnel connections and bytes of the worker's tunnels (gateway-items.ts `WorkerTraffic`). */
  workerTraffic: (id: string) => ({ pk: `WORKER#${id}`, sk: 'TRAFFIC' }),
  /** The sweepers' record of how far they have seen (status-store.ts `SweepMark`). */
  sweepMark: () => ({ pk: 'SWEEPER', sk: 'MARK' }),
  /** A workspace's alert channel (its secrets included; see dynamo-alert-channels.ts). */
  alertChannel: (workspaceId: string, id: string) => ({ pk: `WS#${workspaceId}`, sk: `CHANNEL#${id}` }),
  /** How many alert channels the workspace has (`count`), kept with every create and delete. */
  alertChannelCount: (workspaceId: string) => ({ pk: `WS#${workspaceId}`, sk: 'CHANNELS' }),
  /** Partition of a channel's delivery log (`DELIVERY#<at>#...`, expiring by TTL). */
  channelDeliveries: (channelId: string) => `CHANNEL#${channelId}`,
};

export const EVENT_SK_PREFIX = 'EVENT#';

/**
 * GSI2 sorts a shard's tunnels by type first, so the standard pool reads only standard tunnels by
 * key (`begins_with`), while the sweeper still reads the whole shard.
 */
export const shardSortKeyPrefix = (type: 'standard' | 'reverse') => `${type}#`;

/** A tunnel's GSI2 sort key within its shard. */
export const shardSortKeyOf = (tunnel: { type: 'standard' | 'reverse'; id: string }) =>
  `${shardSortKeyPrefix(tunnel.type)}${tunnel.id}`;

export function tableDefinition(tableName: string): CreateTableCommandInput {
  const s = (name: string) => ({ AttributeName: name, AttributeType: 'S' as const });
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [s('pk'), s('sk'), s('gsi1pk'), s('gsi1sk'), s('gsi2pk'), s('gsi2sk')],
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: GSI1,
        KeySchema: [
          { AttributeName: 'gsi1pk', KeyType: 'HASH' },
          { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: GSI2,
        KeySchema: [
          { AttributeName: 'gsi2pk', KeyType: 'HASH' },
          { AttributeName: 'gsi2sk', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}

/** Creates the table (and its TTL setting) unless it exists; waits until it is active. */
export async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new CreateTableCommand(tableDefinition(tableName)));
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
  }
  await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: tableName });
  await client
    .send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
      }),
    )
    .catch((err: unknown) => {
      // Setting TTL twice is rejected ("already enabled"); that is the state we want.
      if (!(err instanceof Error && /already enabled/i.test(err.message))) throw err;
    });
}

/**
 * The single DynamoDB table: key names, item keys and its definition. The CDK stack declares the
 * same keys and indexes.
 */
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateTableCommand,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';

/**
 * GSI1: a workspace's tunnels, newest first. GSI2: tunnels by shard, for the sweeper's full pass
 * and the standard pool. GSI3 (sparse): the STATUS items with a timer, by shard and time due
 * (status-wake.ts), for the sweeper's periodic pass.
 */
export const GSI1 = 'gsi1';
export const GSI2 = 'gsi2';
export const GSI3 = 'gsi3';
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
  /** One shard of the reverse tunnels the worker carries (gateway-items.ts `WorkerCarries`). */
  workerCarries: (id: string, shard: number) => ({
    pk: `WORKER#${id}`,
    sk: `CARRIES#${String(shard).padStart(2, '0')}`,
  }),
  /**
   * A tunnel the worker has carried (written with each `up` it records): when the worker goes
   * silent, the sweeper finds its tunnels here instead of reading every tunnel.
   */
  workerHold: (workerId: string, tunnelId: string) => ({ pk: `WORKER#${workerId}`, sk: `HOLDS#${tunnelId}` }),
  /** The sweepers' record of how far they have seen (status-store.ts `SweepMark`). */
  sweepMark: () => ({ pk: 'SWEEPER', sk: 'MARK' }),
  /** Tunnels by state and type (status-store.ts `TunnelCount`): set by full passes, moved by each change. */
  tunnelCounts: () => ({ pk: 'SWEEPER', sk: 'COUNTS' }),
  /** A workspace's alert channel (its secrets included; see dynamo-alert-channels.ts). */
  alertChannel: (workspaceId: string, id: string) => ({ pk: `WS#${workspaceId}`, sk: `CHANNEL#${id}` }),
  /** How many alert channels the workspace has (`count`), kept with every create and delete. */
  alertChannelCount: (workspaceId: string) => ({ pk: `WS#${workspaceId}`, sk: 'CHANNELS' }),
  /** Partition of a channel's delivery log (`DELIVERY#<at>#...`, expiring by TTL). */
  channelDeliveries: (channelId: string) => `CHANNEL#${channelId}`,
};

export const EVENT_SK_PREFIX = 'EVENT#';
export const HOLDS_SK_PREFIX = 'HOLDS#';

/** GSI3 keys of a STATUS item due at `wakeAt` (epoch ms): sorted by time within the shard. */
export function wakeKeys(
  shard: number,
  tunnelId: string,
  wakeAt: number,
): { gsi3pk: string; gsi3sk: string } {
  return { gsi3pk: `WAKE#${shard}`, gsi3sk: `${wakeSortTime(wakeAt)}#${tunnelId}` };
}

/** Every GSI3 sort key due at or before `at` sorts before this one. */
export function wakeSortKeyAfter(at: number): string {
  return `${wakeSortTime(at)}#~`;
}

function wakeSortTime(ms: number): string {
  return String(Math.max(0, Math.round(ms))).padStart(15, '0');
}

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
    AttributeDefinitions: [
      s('pk'),
      s('sk'),
      s('gsi1pk'),
      s('gsi1sk'),
      s('gsi2pk'),
      s('gsi2sk'),
      s('gsi3pk'),
      s('gsi3sk'),
    ],
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
      WAKE_INDEX,
    ],
    // The sweeper learns of every write to a tunnel's STATE or META item from the stream.
    StreamSpecification: { StreamEnabled: true, StreamViewType: 'KEYS_ONLY' },
  };
}

const WAKE_INDEX = {
  IndexName: GSI3,
  KeySchema: [
    { AttributeName: 'gsi3pk', KeyType: 'HASH' as const },
    { AttributeName: 'gsi3sk', KeyType: 'RANGE' as const },
  ],
  // The sweeper reads the tunnel's items by key anyway.
  Projection: { ProjectionType: 'KEYS_ONLY' as const },
};

/** Creates the table (and its TTL setting) unless it exists; waits until it is active. */
export async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new CreateTableCommand(tableDefinition(tableName)));
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
  }
  await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: tableName });
  await upgradeTable(client, tableName);
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

/**
 * A table made by an older `npm start` (a kept DATA_DIR) gains what this version reads: the wake
 * index and the stream. Each is added once; the call returns when the index can be queried.
 */
async function upgradeTable(client: DynamoDBClient, tableName: string): Promise<void> {
  const describe = async () => (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  let table = await describe();
  if (!table?.StreamSpecification?.StreamEnabled) {
    const { StreamSpecification } = tableDefinition(tableName);
    await client.send(new UpdateTableCommand({ TableName: tableName, StreamSpecification }));
  }
  if (!table?.GlobalSecondaryIndexes?.some((i) => i.IndexName === GSI3)) {
    await client.send(
      new UpdateTableCommand({
        TableName: tableName,
        AttributeDefinitions: tableDefinition(tableName).AttributeDefinitions,
        GlobalSecondaryIndexUpdates: [{ Create: WAKE_INDEX }],
      }),
    );
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    table = await describe();
    const wake = table?.GlobalSecondaryIndexes?.find((i) => i.IndexName === GSI3);
    if (wake?.IndexStatus === 'ACTIVE' && table?.LatestStreamArn) return;
    if (Date.now() > deadline) throw new Error(`table ${tableName}: the wake index or stream is not ready`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The table's current stream (what the sweeper follows for the writes of workers and the API). */
export async function streamArnOf(client: DynamoDBClient, tableName: string): Promise<string> {
  const table = (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  if (!table?.LatestStreamArn) throw new Error(`table ${tableName} has no stream`);
  return table.LatestStreamArn;
}

/**
 * `TunnelStore` on one DynamoDB table (keys in `table.ts`). Writes that must not race are
 * conditional: tunnel creation and its port claim are one transaction, updates carry the version
 * they read, deletes free the port only if it still belongs to the tunnel.
 */
import { createHash, randomInt } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import type { ApiKeyRecord } from '../api-keys';
import type { PortRange } from '../config';
import {
  ConflictError,
  NotFoundError,
  PortsExhaustedError,
  tunnelQuotaExceeded,
  ValidationError,
} from '../errors';
import type { WorkerHeartbeat } from '../gateway-items';
import { EventSchema, type TunnelEvent, type TunnelStateName, TunnelStateNameSchema } from '../schemas';
import { type TunnelRecord, TunnelRecordSchema } from '../tunnel';
import { batchGetItems } from './batch-get';
import { cancelledBy, isConditionalFailure, isTransactionConflict, jitteredPause } from './dynamo-errors';
import { DynamoStatusStore } from './dynamo-status-store';
import { DynamoWorkspaces, type FoundApiKey } from './dynamo-workspaces';
import { decodeCursor, encodeCursor } from './page-cursor';
import { listWorkerHeartbeats } from './query';
import { readEach, salvage, tunnelIdOf, UnreadableItemError, unreadableReason } from './read-items';
import type { StatusSources } from './status-store';
import { EVENT_SK_PREFIX, GSI1, keys, SHARD_COUNT, shardSortKeyOf } from './table';
import { tunnelChangePut } from './tunnel-changes';
import { movesOf } from './tunnel-counts';
import type { TunnelPage, TunnelStore, Workspace } from './tunnel-store';

/** Ports looked up per batch read while searching for a free one (BatchGetItem's maximum). */
const PORT_WINDOW = 100;
/**
 * Creates that lose a port race (or collide on the workspace's count) retry with a fresh candidate;
 * bounded so exhaustion surfaces.
 */
const MAX_CREATE_ATTEMPTS = 20;

const CursorSchema = z.object({ pk: z.string(), sk: z.string(), gsi1pk: z.string(), gsi1sk: z.string() });
const UsageItemSchema = z.object({ tunnelCount: z.number().int() });

const TunnelTypeSchema = TunnelRecordSchema.shape.type;

export class DynamoTunnelStore implements TunnelStore {
  private readonly statusStore: DynamoStatusStore;
  private readonly workspaces: DynamoWorkspaces;

  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {
    this.statusStore = new DynamoStatusStore(db, tableName);
    this.workspaces = new DynamoWorkspaces(db, tableName);
  }

  createWorkspace(workspace: Workspace, key: ApiKeyRecord): Promise<void> {
    return this.workspaces.createWorkspace(workspace, key);
  }

  ensureWorkspace(workspace: Workspace, key: ApiKeyRecord) {
    return this.workspaces.ensureWorkspace(workspace, key);
  }

  getWorkspace(id: string) {
    return this.workspaces.getWorkspace(id);
  }

  listWorkspaces(page: { limit: number; cursor?: string }) {
    return this.workspaces.listWorkspaces(page);
  }

  findApiKey(hash: string) {
    return this.workspaces.findApiKey(hash);
  }

  listApiKeys(workspaceId: string) {
    return this.workspaces.listApiKeys(workspaceId);
  }

  addApiKey(workspaceId: string, key: ApiKeyRecord, maxKeys: number) {
    return this.workspaces.addApiKey(workspaceId, key, maxKeys);
  }

  revokeApiKey(workspaceId: string, keyId: string) {
    return this.workspaces.revokeApiKey(workspaceId, keyId);
  }

  markApiKeyUsed(workspaceId: string, keyId: string, at: string) {
    return this.workspaces.markApiKeyUsed(workspaceId, keyId, at);
  }

  adoptLegacyKey(hash: string, found: FoundApiKey) {
    return this.workspaces.adoptLegacyKey(hash, found);
  }

  async createTunnel(
    tunnel: Omit<TunnelRecord, 'port' | 'version'>,
    range: PortRange,
    maxTunnels = Number.POSITIVE_INFINITY,
  ): Promise<TunnelRecord> {
    await this.usage(tunnel.workspaceId);
    for (let attempt = 0; attempt < MAX_CREATE_ATTEMPTS; attempt++) {
      if (attempt > 0) await jitteredPause(attempt);
      const port = await this.findFreePort(range);
      const record: TunnelRecord = { ...tunnel, port, version: 1 };
      const withinQuota = Number.isFinite(maxTunnels);
      try {
        await this.db.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Put: {
                  TableName: this.tableName,
                  Item: tunnelItem(record),
                  ConditionExpression: 'attribute_not_exists(pk)',
                },
              },
              {
                Put: {
                  TableName: this.tableName,
                  Item: { ...keys.port(port), tunnelId: record.id, workspaceId: record.workspaceId },
                  ConditionExpression: 'attribute_not_exists(pk)',
                },
              },
              {
                // Counted in the same write as the tunnel, so the quota holds under any concurrency.
                Update: {
                  TableName: this.tableName,
                  Key: keys.workspaceUsage(record.workspaceId),
                  UpdateExpression: 'SET tunnelCount = tunnelCount + :one',
                  ConditionExpression: withinQuota ? 'tunnelCount < :max' : 'attribute_exists(tunnelCount)',
                  ExpressionAttributeValues: withinQuota ? { ':one': 1, ':max': maxTunnels } : { ':one': 1 },
                },
              },
            ],
          }),
        );
        return record;
      } catch (err) {
        if (cancelledBy(err, 2)) throw tunnelQuotaExceeded(maxTunnels, { cause: err });
        // Another create claimed the port between our read and our write, or wrote the workspace's
        // count at the same moment: try again with a fresh port.
        if (cancelledBy(err, 1) || isTransactionConflict(err)) continue;
        if (cancelledBy(err, 0))
          throw new ConflictError(`tunnel ${record.id} already exists`, { cause: err });
        throw err;
      }
    }
    throw new ConflictError(`could not claim a tunnel port after ${MAX_CREATE_ATTEMPTS} attempts; retry`);
  }

  async getTunnel(workspaceId: string, id: string): Promise<TunnelRecord | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.tunnel(id), ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const parsed = TunnelRecordSchema.safeParse(Item);
    if (!parsed.success) {
      const salvaged = salvage(Item);
      // Another workspace's tunnel stays indistinguishable from a missing one, readable or not.
      if (salvaged.workspaceId !== workspaceId) return undefined;
      throw new UnreadableItemError(
        { ...tunnelIdOf(Item), reason: unreadableReason(parsed.error) },
        salvaged,
      );
    }
    return parsed.data.workspaceId === workspaceId ? parsed.data : undefined;
  }

  async listTunnels(workspaceId: string, page: { limit: number; cursor?: string }): Promise<TunnelPage> {
    const partition = `WS#${workspaceId}`;
    const startKey = page.cursor === undefined ? undefined : decodeListingCursor(page.cursor, partition);
    const out = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: GSI1,
        KeyConditionExpression: 'gsi1pk = :ws',
        ExpressionAttributeValues: { ':ws': partition },
        ScanIndexForward: false,
        Limit: page.limit,
        ExclusiveStartKey: startKey,
      }),
    );
    const { read, unreadable } = readEach(out.Items ?? [], TunnelRecordSchema, tunnelIdOf);
    const result: TunnelPage = { items: read, unreadable };
    if (out.LastEvaluatedKey) result.cursor = encodeCursor(CursorSchema.parse(out.LastEvaluatedKey));
    return result;
  }

  async updateTunnel(next: TunnelRecord): Promise<TunnelRecord> {
    const written: TunnelRecord = { ...next, version: next.version + 1 };
    try {
      await this.db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: tunnelItem(written),
                ConditionExpression: 'attribute_exists(pk) AND version = :v AND workspaceId = :ws',
                ExpressionAttributeValues: { ':v': next.version, ':ws': next.workspaceId },
              },
            },
            // The gateways carrying it learn of the change from this log (tunnel-changes.ts).
            tunnelChangePut(this.tableName, next.id, Date.now(), written.version),
          ],
        }),
      );
    } catch (err) {
      if (cancelledBy(err, 0) || isTransactionConflict(err)) {
        throw new ConflictError(`tunnel ${next.id} was changed by another request; retry`, { cause: err });
      }
      throw err;
    }
    return written;
  }

  async deleteTunnel(
    tunnel: Pick<TunnelRecord, 'id' | 'workspaceId'> & { port?: number; type?: string },
  ): Promise<void> {
    await this.usage(tunnel.workspaceId);
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await jitteredPause(attempt);
      try {
        await this.deleteOnce(tunnel);
        return;
      } catch (err) {
        if (attempt < MAX_CREATE_ATTEMPTS && isTransactionConflict(err)) continue;
        throw err;
      }
    }
  }

  private async deleteOnce(
    tunnel: Pick<TunnelRecord, 'id' | 'workspaceId'> & { port?: number; type?: string },
  ): Promise<void> {
    const items: NonNullable<TransactWriteCommandInput['TransactItems']> = [
      {
        Delete: {
          TableName: this.tableName,
          Key: keys.tunnel(tunnel.id),
          ConditionExpression: 'attribute_exists(pk) AND workspaceId = :ws',
          ExpressionAttributeValues: { ':ws': tunnel.workspaceId },
        },
      },
      { Delete: { TableName: this.tableName, Key: keys.tunnelState(tunnel.id) } },
      { Delete: { TableName: this.tableName, Key: keys.tunnelStatus(tunnel.id) } },
      { Delete: { TableName: this.tableName, Key: keys.tunnelSignals(tunnel.id) } },
      tunnelChangePut(this.tableName, tunnel.id, Date.now()),
      {
        Update: {
          TableName: this.tableName,
          Key: keys.workspaceUsage(tunnel.workspaceId),
          UpdateExpression: 'SET tunnelCount = tunnelCount - :one',
          ExpressionAttributeValues: { ':one': 1 },
        },
      },
    ];
    // The port is freed only if it is still this tunnel's (an unreadable item may not say which).
    if (tunnel.port !== undefined) {
      items.push({
        Delete: {
          TableName: this.tableName,
          Key: keys.port(tunnel.port),
          ConditionExpression: 'attribute_not_exists(pk) OR tunnelId = :id',
          ExpressionAttributeValues: { ':id': tunnel.id },
        },
      });
    }
    const counted = await this.countedState(tunnel);
    try {
      await this.db.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      if (cancelledBy(err, 0)) throw new NotFoundError('tunnel', tunnel.id, { cause: err });
      throw err;
    }
    if (counted) await this.uncount(counted);
  }

  /** The state the tunnel counts in (tunnel-counts.ts), from its STATUS item; none when unknown. */
  private async countedState(
    tunnel: Pick<TunnelRecord, 'id'> & { type?: string },
  ): Promise<{ type: TunnelRecord['type']; state: TunnelStateName } | undefined> {
    const type = TunnelTypeSchema.safeParse(tunnel.type);
    if (!type.success) return undefined;
    const { Item } = await this.db.send(
      new GetCommand({
        TableName: this.tableName,
        Key: keys.tunnelStatus(tunnel.id),
        ConsistentRead: true,
        ProjectionExpression: '#state',
        ExpressionAttributeNames: { '#state': 'state' },
      }),
    );
    const state = TunnelStateNameSchema.safeParse(Item?.state);
    return state.success ? { type: type.data, state: state.data } : undefined;
  }

  /**
   * Best effort, and not the delete's failure: a count left too high shows in the operator's
   * `tunnels` gauge only until the sweepers' next full pass sets every count again.
   */
  private async uncount(counted: { type: TunnelRecord['type']; state: TunnelStateName }): Promise<void> {
    await this.statusStore
      .moveTunnelCounts(movesOf(counted.type, counted.state, undefined))
      .catch(() => undefined);
  }

  listWorkers(): Promise<WorkerHeartbeat[]> {
    return listWorkerHeartbeats(this.db, this.tableName);
  }

  async getStatusSources(ids: string[]): Promise<Map<string, StatusSources>> {
    return this.statusStore.getStatusSources(ids);
  }

  async listEvents(id: string, limit: number): Promise<TunnelEvent[]> {
    const out = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': keys.tunnel(id).pk, ':prefix': EVENT_SK_PREFIX },
        ScanIndexForward: false,
        Limit: limit,
      }),
    );
    return (out.Items ?? []).map((item) => EventSchema.parse(item));
  }

  async ping(): Promise<void> {
    await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.sweepMark() }));
  }

  countTunnels(workspaceId: string): Promise<number> {
    return this.usage(workspaceId);
  }

  /**
   * The workspace's tunnel count, from its usage item. Workspaces from before quotas have none:
   * their tunnels are counted once (the listing index, read to the end) and the count stored,
   * unless a concurrent call stored it first.
   */
  private async usage(workspaceId: string): Promise<number> {
    const key = keys.workspaceUsage(workspaceId);
    const read = async () => {
      const { Item } = await this.db.send(
        new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }),
      );
      return UsageItemSchema.safeParse(Item);
    };
    const stored = await read();
    if (stored.success) return stored.data.tunnelCount;
    let count = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: GSI1,
          KeyConditionExpression: 'gsi1pk = :ws',
          ExpressionAttributeValues: { ':ws': `WS#${workspaceId}` },
          Select: 'COUNT',
          ExclusiveStartKey: startKey,
        }),
      );
      count += out.Count ?? 0;
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    await this.putIfAbsent({ ...key, tunnelCount: count });
    const settled = await read();
    return settled.success ? settled.data.tunnelCount : count;
  }

  private async putIfAbsent(item: Record<string, unknown>): Promise<void> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (err) {
      if (!isConditionalFailure(err)) throw err;
    }
  }

  /**
   * Picks a free port: reads windows of PORT# items from a random offset until one has a gap,
   * then a random gap of it, so concurrent creates rarely collide and a full range is detected.
   */
  private async findFreePort(range: PortRange): Promise<number> {
    const size = range.to - range.from + 1;
    const start = randomInt(size);
    for (let scanned = 0; scanned < size; scanned += PORT_WINDOW) {
      const window: number[] = [];
      for (let i = scanned; i < Math.min(scanned + PORT_WINDOW, size); i++) {
        window.push(range.from + ((start + i) % size));
      }
      const taken = new Set(
        (
          await batchGetItems(
            this.db,
            this.tableName,
            window.map((p) => keys.port(p)),
          )
        ).map((item) => Number(String(item.pk).slice(5))),
      );
      const free = window.filter((p) => !taken.has(p));
      const pick = free[randomInt(free.length || 1)];
      if (pick !== undefined) return pick;
    }
    throw new PortsExhaustedError(`${range.from}-${range.to}`);
  }
}

/** The stored `TUNNEL#<id>/META` item of a record, with its listing (GSI1) and shard (GSI2) keys. */
export function tunnelItem(record: TunnelRecord): Record<string, unknown> {
  return {
    ...keys.tunnel(record.id),
    gsi1pk: `WS#${record.workspaceId}`,
    gsi1sk: `${record.createdAt}#${record.id}`,
    gsi2pk: `SHARD#${shardOf(record.id)}`,
    gsi2sk: shardSortKeyOf(record),
    ...record,
  };
}

/** Stable shard of a tunnel, for the sweeper's parallel reads. */
export function shardOf(id: string): number {
  return createHash('sha256').update(id).digest().readUInt16BE(0) % SHARD_COUNT;
}

function decodeListingCursor(cursor: string, partition: string): z.infer<typeof CursorSchema> {
  const key = decodeCursor(cursor, CursorSchema);
  // A cursor names a position in one workspace's listing; never let it point into another's.
  if (key.gsi1pk !== partition)
    throw ValidationError.field('cursor', 'is not a cursor returned by this listing');
  return key;
}

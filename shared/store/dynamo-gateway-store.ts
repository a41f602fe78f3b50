/** `GatewayStore` on the single table (keys in `table.ts`). */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import {
  connectorStateAttributes,
  type LeaseItem,
  LeaseItemSchema,
  lastDownOf,
  parseStateItem,
  type TunnelStateItem,
  TunnelStateItemSchema,
  type WorkerCarries,
  WorkerCarriesSchema,
  type WorkerHeartbeat,
  WorkerHeartbeatSchema,
  type WorkerTraffic,
} from '../gateway-items';
import { type TunnelRecord, TunnelRecordSchema } from '../tunnel';
import { type TunnelSignals, TunnelSignalsSchema } from '../tunnel-signals';
import { batchGetItems } from './batch-get';
import { cancelledBy, isConditionalFailure, isTransactionConflict, jitteredPause } from './dynamo-errors';
import type { GatewayStore, TunnelsRead } from './gateway-store';
import { listWorkerHeartbeats, queryAll } from './query';
import {
  readEach,
  salvage,
  tunnelIdOf,
  type UnreadableItem,
  UnreadableItemError,
  unreadableReason,
} from './read-items';
import { GSI2, keys, SHARD_COUNT, shardSortKeyPrefix, TTL_ATTRIBUTE, WORKERS_PARTITION } from './table';
import { listTunnelChanges, type TunnelChange, tunnelChangePut } from './tunnel-changes';
import { replaceFields, type UpdateParts, updateExpression } from './update-expression';

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** Reads and writes of a key retirement, when other writes keep changing the record in between. */
const MAX_RETIRE_ATTEMPTS = 3;
const RetireReadSchema = z.object({ previousPublicKey: z.string().optional(), version: z.number().int() });

export class DynamoGatewayStore implements GatewayStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async getTunnelById(id: string): Promise<TunnelRecord | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.tunnel(id), ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const parsed = TunnelRecordSchema.safeParse(Item);
    if (parsed.success) return parsed.data;
    throw new UnreadableItemError(
      { ...tunnelIdOf(Item), reason: unreadableReason(parsed.error) },
      salvage(Item),
    );
  }

  async getTunnelsByIds(ids: string[]): Promise<TunnelsRead> {
    const items = await batchGetItems(this.db, this.tableName, ids.map(keys.tunnel));
    const { read, unreadable } = readEach(items, TunnelRecordSchema, tunnelIdOf);
    return { found: new Map(read.map((r) => [r.id, r])), unreadable };
  }

  async writeState(tunnelId: string, item: TunnelStateItem): Promise<boolean> {
    // Only over the state of the same or an older connection (or lease epoch), and only while the
    // tunnel exists, so neither a stale worker nor a late write can overwrite newer truth.
    const ownership = 'attribute_not_exists(connectedAt) OR connectedAt <= :connectedAt';
    const update = stateUpdate(item);
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
              Update: {
                TableName: this.tableName,
                Key: keys.tunnelState(tunnelId),
                UpdateExpression: updateExpression(update),
                ConditionExpression: ownership,
                ExpressionAttributeNames: update.names,
                ExpressionAttributeValues: { ...update.values, ':connectedAt': item.connectedAt ?? '' },
              },
            },
            ...this.holdOf(tunnelId, item),
          ],
        }),
      );
      return true;
    } catch (err) {
      // Superseded (a condition failed) is an answer; a conflict with a concurrent transaction is
      // not, and is rethrown so the caller retries the write.
      if (err instanceof TransactionCanceledException) {
        const codes = (err.CancellationReasons ?? []).map((r) => r.Code);
        if (codes.includes('ConditionalCheckFailed') && !codes.includes('TransactionConflict')) return false;
      }
      throw err;
    }
  }

  async writeConnectorState(tunnelId: string, connectorId: string, item: TunnelStateItem): Promise<boolean> {
    const attribute = connectorStateAttributes(connectorId);
    const { lastDown: _kept, rev: _rev, ...entry } = item;
    const names: Record<string, string> = { '#c': attribute.state, '#rev': 'rev' };
    const values: Record<string, unknown> = {
      ':entry': entry,
      ':connectedAt': item.connectedAt ?? '',
      ':zero': 0,
      ':one': 1,
    };
    const set = ['#c = :entry', '#rev = if_not_exists(#rev, :zero) + :one'];
    // The newest down outlives the states written after it, as the primary's `lastDown` does.
    if (item.state === 'down') {
      names['#d'] = attribute.lastDown;
      values[':lastDown'] = lastDownOf(item);
      set.push('#d = :lastDown');
    }
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
              Update: {
                TableName: this.tableName,
                Key: keys.tunnelState(tunnelId),
                UpdateExpression: `SET ${set.join(', ')}`,
                // The connector's slot, like the primary's item: only over the same or an older connection.
                ConditionExpression: 'attribute_not_exists(#c.connectedAt) OR #c.connectedAt <= :connectedAt',
                ExpressionAttributeNames: names,
                ExpressionAttributeValues: values,
              },
            },
            ...this.holdOf(tunnelId, item),
          ],
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof TransactionCanceledException) {
        const codes = (err.CancellationReasons ?? []).map((r) => r.Code);
        if (codes.includes('ConditionalCheckFailed') && !codes.includes('TransactionConflict')) return false;
      }
      throw err;
    }
  }

  /**
   * With every `up`, the owner's hold on the tunnel (table.ts `workerHold`): in the same write, so
   * no tunnel is up on a worker that the sweeper could not find its tunnels through.
   */
  private holdOf(tunnelId: string, item: TunnelStateItem): TransactItem[] {
    if (item.state !== 'up' || !item.owner) return [];
    return [
      {
        Put: {
          TableName: this.tableName,
          Item: { ...keys.workerHold(item.owner, tunnelId), tunnelId, since: item.since },
        },
      },
    ];
  }

  async writeSignals(tunnelId: string, signals: TunnelSignals): Promise<boolean> {
    const fields = TunnelSignalsSchema.keyof().options.filter((field) => signals[field] !== undefined);
    if (fields.length === 0) return true;
    const update = replaceFields(fields, signals);
    try {
      await this.db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              // Only while the tunnel exists: a late write never leaves an orphan after a delete.
              ConditionCheck: {
                TableName: this.tableName,
                Key: keys.tunnel(tunnelId),
                ConditionExpression: 'attribute_exists(pk)',
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: keys.tunnelSignals(tunnelId),
                UpdateExpression: updateExpression(update),
                ExpressionAttributeNames: update.names,
                ExpressionAttributeValues: update.values,
              },
            },
          ],
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof TransactionCanceledException) {
        const codes = (err.CancellationReasons ?? []).map((r) => r.Code);
        if (codes.includes('ConditionalCheckFailed') && !codes.includes('TransactionConflict')) return false;
      }
      throw err;
    }
  }

  async retirePreviousKey(tunnelId: string, previousPublicKey: string): Promise<void> {
    // The change log names the version the retirement writes, so the record is read for it first;
    // a write in between (another field changed) is read again, a bounded number of times.
    for (let attempt = 0; attempt < MAX_RETIRE_ATTEMPTS; attempt++) {
      if (attempt > 0) await jitteredPause(attempt);
      const { Item } = await this.db.send(
        new GetCommand({
          TableName: this.tableName,
          Key: keys.tunnel(tunnelId),
          ProjectionExpression: 'previousPublicKey, version',
          ConsistentRead: true,
        }),
      );
      const read = RetireReadSchema.safeParse(Item);
      // Gone, unreadable, or the key changed meanwhile (another rotation, or retired already).
      if (!read.success || read.data.previousPublicKey !== previousPublicKey) return;
      const { version } = read.data;
      try {
        await this.db.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  TableName: this.tableName,
                  Key: keys.tunnel(tunnelId),
                  UpdateExpression: 'REMOVE previousPublicKey SET version = :next',
                  ConditionExpression: 'previousPublicKey = :old AND version = :v',
                  ExpressionAttributeValues: {
                    ':old': previousPublicKey,
                    ':v': version,
                    ':next': version + 1,
                  },
                },
              },
              // Sessions on the retired key, on any gateway, end with this change (tunnel-changes.ts).
              tunnelChangePut(this.tableName, tunnelId, Date.now(), version + 1),
            ],
          }),
        );
        return;
      } catch (err) {
        if (!cancelledBy(err, 0) && !isTransactionConflict(err)) throw err;
      }
    }
  }

  listTunnelChanges(sinceMs: number, untilMs: number): Promise<TunnelChange[]> {
    return listTunnelChanges(this.db, this.tableName, sinceMs, untilMs);
  }

  async putHeartbeat(beat: WorkerHeartbeat, ttlSeconds: number): Promise<void> {
    const expiresAt = Math.floor(Date.parse(beat.lastBeatAt) / 1000) + ttlSeconds;
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...keys.worker(beat.workerId),
          gsi2pk: WORKERS_PARTITION,
          gsi2sk: beat.workerId,
          ...beat,
          [TTL_ATTRIBUTE]: expiresAt,
        },
      }),
    );
  }

  listWorkers(): Promise<WorkerHeartbeat[]> {
    return listWorkerHeartbeats(this.db, this.tableName);
  }

  async listStandardTunnels(): Promise<{ tunnels: TunnelRecord[]; unreadable: UnreadableItem[] }> {
    // By key, not by filter: a filter still reads (and bills) every reverse tunnel on every poll.
    const shards = Array.from({ length: SHARD_COUNT }, (_, n) =>
      queryAll(this.db, this.tableName, GSI2, 'gsi2pk = :p AND begins_with(gsi2sk, :standard)', {
        ':p': `SHARD#${n}`,
        ':standard': shardSortKeyPrefix('standard'),
      }),
    );
    const { read, unreadable } = readEach((await Promise.all(shards)).flat(), TunnelRecordSchema, tunnelIdOf);
    return { tunnels: read, unreadable };
  }

  async getLeases(tunnelIds: string[]): Promise<Map<string, LeaseItem>> {
    // BatchGetItem rejects a request that names a key twice; callers merge id lists freely.
    const unique = [...new Set(tunnelIds)];
    const items = await batchGetItems(this.db, this.tableName, unique.map(keys.tunnelLease));
    return new Map(
      items.map((item) => [String(item.pk).slice('TUNNEL#'.length), LeaseItemSchema.parse(item)]),
    );
  }

  async claimLease(
    tunnelId: string,
    owner: string,
    staleOwner: string | undefined,
    at: string,
  ): Promise<boolean> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.tunnelLease(tunnelId), owner, claimedAt: at },
          ConditionExpression:
            staleOwner === undefined
              ? 'attribute_not_exists(pk)'
              : 'attribute_not_exists(pk) OR #owner = :stale',
          ExpressionAttributeNames: staleOwner === undefined ? undefined : { '#owner': 'owner' },
          ExpressionAttributeValues: staleOwner === undefined ? undefined : { ':stale': staleOwner },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw err;
    }
  }

  async releaseLease(tunnelId: string, owner: string): Promise<void> {
    try {
      await this.db.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.tunnelLease(tunnelId),
          ConditionExpression: '#owner = :me',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':me': owner },
        }),
      );
    } catch (err) {
      if (!isConditionalFailure(err)) throw err;
    }
  }

  async handOverLease(tunnelId: string, owner: string, connId: string): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.tunnelLease(tunnelId),
          UpdateExpression: 'SET handingOver = :conn',
          ConditionExpression: '#owner = :me',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':me': owner, ':conn': connId },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw err;
    }
  }

  async getStates(tunnelIds: string[]): Promise<Map<string, TunnelStateItem>> {
    const unique = [...new Set(tunnelIds)];
    const items = await batchGetItems(this.db, this.tableName, unique.map(keys.tunnelState));
    const states = new Map<string, TunnelStateItem>();
    for (const item of items) {
      const parsed = parseStateItem(item);
      // One that does not read is not a new owner's `up`: the caller waits for it as for none.
      if (parsed.ok && parsed.read.primary)
        states.set(String(item.pk).slice('TUNNEL#'.length), parsed.read.primary);
    }
    return states;
  }

  async pinHostKey(tunnelId: string, fingerprint: string): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.tunnel(tunnelId),
          UpdateExpression: 'SET ssh.hostKeyFingerprint = :fp, version = version + :one',
          ConditionExpression: 'attribute_exists(ssh) AND attribute_not_exists(ssh.hostKeyFingerprint)',
          ExpressionAttributeValues: { ':fp': fingerprint, ':one': 1 },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw err;
    }
  }

  async putTraffic(traffic: WorkerTraffic, ttlSeconds: number): Promise<void> {
    const expiresAt = Math.floor(Date.parse(traffic.reportedAt) / 1000) + ttlSeconds;
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...keys.workerTraffic(traffic.workerId), ...traffic, [TTL_ATTRIBUTE]: expiresAt },
      }),
    );
  }

  async putCarries(carries: WorkerCarries, ttlSeconds: number): Promise<void> {
    const expiresAt = Math.floor(Date.parse(carries.writtenAt) / 1000) + ttlSeconds;
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...keys.workerCarries(carries.workerId, carries.shard),
          ...carries,
          [TTL_ATTRIBUTE]: expiresAt,
        },
      }),
    );
  }

  async getCarries(refs: readonly { workerId: string; shard: number }[]): Promise<WorkerCarries[]> {
    if (refs.length === 0) return [];
    const items = await batchGetItems(
      this.db,
      this.tableName,
      refs.map((ref) => keys.workerCarries(ref.workerId, ref.shard)),
    );
    // One unreadable shard is left out (its peer is read again next time), never the others.
    return items.flatMap((item) => {
      const parsed = WorkerCarriesSchema.safeParse(item);
      return parsed.success ? [parsed.data] : [];
    });
  }

  async getHeartbeats(workerIds: string[]): Promise<Map<string, WorkerHeartbeat>> {
    const items = await batchGetItems(this.db, this.tableName, [...new Set(workerIds)].map(keys.worker));
    return new Map(items.map((item) => WorkerHeartbeatSchema.parse(item)).map((b) => [b.workerId, b]));
  }
}

/**
 * The STATE item's attributes become exactly `item`'s, except `lastDown`: an update rather than a
 * put, so the newest down outlives the states written after it (a `down` sets it).
 */
function stateUpdate(item: TunnelStateItem): UpdateParts {
  const fields = TunnelStateItemSchema.keyof().options.filter((key) => key !== 'lastDown' && key !== 'rev');
  const parts = replaceFields(fields, item);
  const lastDown = item.state === 'down' ? lastDownOf(item) : item.lastDown;
  if (lastDown) {
    parts.names['#lastDown'] = 'lastDown';
    parts.values[':lastDown'] = lastDown;
    parts.set.push('#lastDown = :lastDown');
  }
  parts.names['#rev'] = 'rev';
  parts.values[':zero'] = 0;
  parts.values[':one'] = 1;
  parts.set.push('#rev = if_not_exists(#rev, :zero) + :one');
  return parts;
}

/**
 * `StatusStore` on the single table. Every write is conditional, each condition named for what it
 * prevents: a transition only over the STATUS version it was computed from (two sweepers, one
 * winner) and only while the tunnel exists (no orphan items after a delete); a claim only on the
 * alert revision that was read (a stale read cannot re-deliver); a settle only by the claim holder.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import {
  parseStateItem,
  type WorkerHeartbeat,
  WorkerHeartbeatSchema,
  type WorkerTraffic,
  WorkerTrafficSchema,
} from '../gateway-items';
import type { Traffic } from '../schemas';
import {
  eventExpiresAt,
  eventSortKey,
  type OutboxAlert,
  type StatusItem,
  StatusItemSchema,
  type StatusRecord,
} from '../status-items';
import { type TunnelRecord, TunnelRecordSchema } from '../tunnel';
import { TunnelSignalsSchema } from '../tunnel-signals';
import { batchDeleteItems, batchGetItems } from './batch-get';
import { isConditionalFailure } from './dynamo-errors';
import { shardOf } from './dynamo-tunnel-store';
import { listWorkerHeartbeats, queryAll } from './query';
import type { UnreadableItem } from './read-items';
import { readEach, tunnelIdOf, unreadableReason } from './read-items';
import type {
  AlertClaim,
  ShardCursor,
  ShardPage,
  StatusChange,
  StatusItems,
  StatusSources,
  StatusStore,
  SweepMark,
  TunnelCount,
} from './status-store';
import { ownersToCheck, withHeartbeats } from './status-store';
import {
  GSI2,
  GSI3,
  HOLDS_SK_PREFIX,
  keys,
  shardSortKeyOf,
  TTL_ATTRIBUTE,
  wakeKeys,
  wakeSortKeyAfter,
} from './table';
import { type CountMove, countsItem, countsOf, moveCountsUpdate } from './tunnel-counts';
import { replaceFields, updateExpression } from './update-expression';

const SweepMarkSchema = z.object({ lastCompleteAt: z.number(), observingSince: z.number() });

/** Tunnels per shard query page: two batch reads (STATE and STATUS) of 100 keys each. */
const SHARD_PAGE_SIZE = 100;

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

export class DynamoStatusStore implements StatusStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly pageSize = SHARD_PAGE_SIZE,
  ) {}

  async listShard(shard: number, cursor?: ShardCursor): Promise<ShardPage> {
    const out = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: GSI2,
        KeyConditionExpression: 'gsi2pk = :shard',
        ExpressionAttributeValues: { ':shard': `SHARD#${shard}` },
        Limit: this.pageSize,
        ExclusiveStartKey: cursor,
      }),
    );
    const { read, unreadable } = readEach(out.Items ?? [], TunnelRecordSchema, tunnelIdOf);
    const page: ShardPage = { items: read, unreadable };
    if (out.LastEvaluatedKey) page.cursor = out.LastEvaluatedKey;
    await this.upgradeShardSortKeys(out.Items ?? [], read);
    return page;
  }

  /**
   * Tunnels stored before GSI2 sorted by type (their gsi2sk was the bare id, as in a DATA_DIR of an
   * older `npm start`) are invisible to the standard pool's poll: each sweep moves them over. They
   * sort after the new keys, so the move never makes this sweep read one twice or skip one.
   */
  private async upgradeShardSortKeys(
    items: Record<string, unknown>[],
    records: TunnelRecord[],
  ): Promise<void> {
    const stored = new Map(items.map((item) => [item.pk, item.gsi2sk]));
    const stale = records
      .map((record) => ({
        id: record.id,
        old: stored.get(keys.tunnel(record.id).pk),
        sk: shardSortKeyOf(record),
      }))
      .filter(({ old, sk }) => old !== sk);
    // Conditional: a tunnel updated meanwhile was written with the new key already.
    await Promise.all(
      stale.map(({ id, old, sk }) =>
        this.conditionalUpdate({
          Key: keys.tunnel(id),
          UpdateExpression: 'SET gsi2sk = :sk',
          ConditionExpression: 'gsi2sk = :old',
          ExpressionAttributeValues: { ':sk': sk, ':old': old },
        }),
      ),
    );
  }

  async listDue(shard: number, now: Date): Promise<string[]> {
    const items = await queryAll(this.db, this.tableName, GSI3, 'gsi3pk = :p AND gsi3sk <= :due', {
      ':p': wakeKeys(shard, '', 0).gsi3pk,
      ':due': wakeSortKeyAfter(now.getTime()),
    });
    return items.flatMap((item) => (typeof item.pk === 'string' ? [item.pk.slice('TUNNEL#'.length)] : []));
  }

  async getTunnels(
    ids: string[],
  ): Promise<{ found: Map<string, TunnelRecord>; unreadable: UnreadableItem[] }> {
    const items = await batchGetItems(this.db, this.tableName, ids.map(keys.tunnel));
    const { read, unreadable } = readEach(items, TunnelRecordSchema, tunnelIdOf);
    return { found: new Map(read.map((r) => [r.id, r])), unreadable };
  }

  listWorkers(): Promise<WorkerHeartbeat[]> {
    return listWorkerHeartbeats(this.db, this.tableName);
  }

  async holdsOf(workerId: string): Promise<string[]> {
    const ids: string[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :holds)',
          ExpressionAttributeValues: { ':pk': keys.worker(workerId).pk, ':holds': HOLDS_SK_PREFIX },
          ProjectionExpression: 'sk',
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of out.Items ?? []) ids.push(String(item.sk).slice(HOLDS_SK_PREFIX.length));
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return ids;
  }

  async releaseHolds(workerId: string, tunnelIds: string[]): Promise<void> {
    await batchDeleteItems(
      this.db,
      this.tableName,
      tunnelIds.map((id) => keys.workerHold(workerId, id)),
    );
  }

  async setWake(
    tunnelId: string,
    wakeAt: number | undefined,
    expected: number | undefined,
  ): Promise<boolean> {
    const names = { '#wakeAt': 'wakeAt' };
    const condition =
      expected === undefined
        ? { ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(#wakeAt)' }
        : { ConditionExpression: '#wakeAt = :expected' };
    const values: Record<string, unknown> = expected === undefined ? {} : { ':expected': expected };
    if (wakeAt === undefined) {
      return this.conditionalUpdate({
        Key: keys.tunnelStatus(tunnelId),
        UpdateExpression: 'REMOVE #wakeAt, gsi3pk, gsi3sk',
        ...condition,
        ExpressionAttributeNames: names,
        ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
      });
    }
    const wake = wakeKeys(shardOf(tunnelId), tunnelId, wakeAt);
    return this.conditionalUpdate({
      Key: keys.tunnelStatus(tunnelId),
      UpdateExpression: 'SET #wakeAt = :wakeAt, gsi3pk = :wpk, gsi3sk = :wsk',
      ...condition,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: { ...values, ':wakeAt': wakeAt, ':wpk': wake.gsi3pk, ':wsk': wake.gsi3sk },
    });
  }

  async getStatusItems(
    ids: string[],
    options: { signals?: boolean } = {},
  ): Promise<Map<string, StatusItems>> {
    const wanted = ids.flatMap((id) => [
      keys.tunnelState(id),
      keys.tunnelStatus(id),
      ...(options.signals ? [keys.tunnelSignals(id)] : []),
    ]);
    const found = new Map<string, StatusItems>();
    for (const item of await batchGetItems(this.db, this.tableName, wanted)) {
      const id = String(item.pk).slice('TUNNEL#'.length);
      const entry = found.get(id) ?? {};
      found.set(id, entry);
      const unreadable = (error: z.ZodError) => {
        entry.unreadable = [
          ...(entry.unreadable ?? []),
          { ...tunnelIdOf(item), reason: unreadableReason(error) },
        ];
      };
      if (item.sk === 'STATE') {
        const state = parseStateItem(item);
        if (!state.ok) unreadable(state.error);
        else {
          if (state.read.primary) entry.state = state.read.primary;
          if (state.read.others) entry.connectorStates = state.read.others;
          if (!state.read.primary && state.read.rev !== undefined) entry.stateRev = state.read.rev;
        }
      } else if (item.sk === 'SIGNALS') {
        const signals = TunnelSignalsSchema.safeParse(item);
        if (signals.success) entry.signals = signals.data;
        else unreadable(signals.error);
      } else {
        const status = StatusItemSchema.safeParse(item);
        if (status.success) entry.status = status.data;
        else unreadable(status.error);
      }
    }
    return found;
  }

  async getHeartbeats(workerIds: string[]): Promise<Map<string, WorkerHeartbeat>> {
    const unique = [...new Set(workerIds)];
    const items = await batchGetItems(this.db, this.tableName, unique.map(keys.worker));
    return new Map(items.map((item) => WorkerHeartbeatSchema.parse(item)).map((b) => [b.workerId, b]));
  }

  async getSweepMark(): Promise<SweepMark | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.sweepMark(), ConsistentRead: true }),
    );
    const mark = SweepMarkSchema.safeParse(Item);
    return mark.success ? mark.data : undefined;
  }

  async putSweepMark(mark: SweepMark): Promise<void> {
    await this.db.send(new PutCommand({ TableName: this.tableName, Item: { ...keys.sweepMark(), ...mark } }));
  }

  async getTunnelCounts(): Promise<TunnelCount[]> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.tunnelCounts() }),
    );
    return countsOf(Item);
  }

  async putTunnelCounts(counts: TunnelCount[]): Promise<void> {
    await this.db.send(new PutCommand({ TableName: this.tableName, Item: countsItem(counts, Date.now()) }));
  }

  async moveTunnelCounts(moves: readonly CountMove[]): Promise<void> {
    const update = moveCountsUpdate(this.tableName, moves);
    if (update) await this.db.send(new UpdateCommand(update));
  }

  /**
   * STATE, STATUS, SIGNALS, owner heartbeats and the owners' per-tunnel traffic of many tunnels: two
   * rounds of batch reads in all.
   */
  async getStatusSources(ids: string[]): Promise<Map<string, StatusSources>> {
    const items = await this.getStatusItems(ids, { signals: true });
    // Only an `up` depends on its owner being alive (any connector's).
    const owners = new Set([...items.values()].flatMap(ownersToCheck));
    const beats = new Map<string, WorkerHeartbeat>();
    const traffic = new Map<string, WorkerTraffic>();
    const wanted = [...owners].flatMap((id) => [keys.worker(id), keys.workerTraffic(id)]);
    for (const item of wanted.length > 0 ? await batchGetItems(this.db, this.tableName, wanted) : []) {
      if (item.sk === 'TRAFFIC') {
        // Traffic is a nicety: one that does not read is left out, never the status with it.
        const read = WorkerTrafficSchema.safeParse(item);
        if (read.success) traffic.set(read.data.workerId, read.data);
      } else {
        const beat = WorkerHeartbeatSchema.parse(item);
        beats.set(beat.workerId, beat);
      }
    }
    const sources = new Map<string, StatusSources>();
    for (const [id, entry] of items) {
      const source = withHeartbeats(entry, beats);
      // The primary connector's gateway counts what it carried (further connectors' are not added).
      const owner = entry.state?.owner;
      const figures = owner ? trafficOf(traffic.get(owner), id) : undefined;
      if (figures) source.traffic = figures;
      sources.set(id, source);
    }
    return sources;
  }

  async recordChange(change: StatusChange): Promise<boolean> {
    const version = change.expectedVersion + 1;
    const items: TransactItem[] = [
      {
        // A tunnel deleted since it was listed gets no STATUS item back (delete removes it).
        ConditionCheck: {
          TableName: this.tableName,
          Key: keys.tunnel(change.tunnelId),
          ConditionExpression: 'attribute_exists(pk)',
        },
      },
      this.stateUnchanged(change),
      change.expectedVersion === 0 ? this.createStatus(change) : this.updateStatus(change),
      ...change.events.map(
        (event, index): TransactItem => ({
          Put: {
            TableName: this.tableName,
            Item: {
              pk: keys.tunnel(change.tunnelId).pk,
              sk: eventSortKey(event.at, version, index),
              ...event,
              [TTL_ATTRIBUTE]: eventExpiresAt(change.now),
            },
          },
        }),
      ),
    ];
    try {
      await this.db.send(new TransactWriteCommand({ TransactItems: items }));
      return true;
    } catch (err) {
      // Lost to another writer (condition) or collided with one (conflict): the next run re-reads.
      if (err instanceof TransactionCanceledException && lostRace(err)) return false;
      throw err;
    }
  }

  async claimAlert(
    tunnelId: string,
    alert: Pick<OutboxAlert, 'id' | 'rev'>,
    claim: AlertClaim,
    now: Date,
  ): Promise<boolean> {
    return this.conditionalUpdate({
      Key: keys.tunnelStatus(tunnelId),
      UpdateExpression: 'SET #alerts.#id.#claim = :claim',
      // Only the revision we read (a settle in between means our view of the sinks is stale), and
      // only if nobody holds it, or the holder's time ran out (it crashed or hung).
      ConditionExpression:
        'attribute_exists(#alerts.#id) AND #alerts.#id.#rev = :rev AND ' +
        '(attribute_not_exists(#alerts.#id.#claim) OR #alerts.#id.#claim.#until < :now)',
      ExpressionAttributeNames: {
        '#alerts': 'alerts',
        '#id': alert.id,
        '#claim': 'claim',
        '#rev': 'rev',
        '#until': 'until',
      },
      ExpressionAttributeValues: { ':claim': claim, ':rev': alert.rev, ':now': now.getTime() },
    });
  }

  async settleAlert(
    tunnelId: string,
    alertId: string,
    claimedBy: string,
    next: OutboxAlert | undefined,
  ): Promise<boolean> {
    return this.conditionalUpdate({
      Key: keys.tunnelStatus(tunnelId),
      UpdateExpression: next ? 'SET #alerts.#id = :next' : 'REMOVE #alerts.#id',
      ConditionExpression: '#alerts.#id.#claim.#by = :me',
      ExpressionAttributeNames: { '#alerts': 'alerts', '#id': alertId, '#claim': 'claim', '#by': 'by' },
      ExpressionAttributeValues: next ? { ':me': claimedBy, ':next': next } : { ':me': claimedBy },
    });
  }

  /**
   * The STATE item a transition was computed from must still be the one read: a worker that wrote
   * in between (a reconnect, a handover) makes the transition stale, and the next run recomputes it.
   */
  private stateUnchanged(change: StatusChange): TransactItem {
    const rev = change.readState?.rev;
    const names = { '#rev': 'rev' };
    const condition = !change.readState
      ? { ConditionExpression: 'attribute_not_exists(pk)' }
      : rev === undefined
        ? {
            ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(#rev)',
            ExpressionAttributeNames: names,
          }
        : {
            ConditionExpression: '#rev = :rev',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: { ':rev': rev },
          };
    return {
      ConditionCheck: { TableName: this.tableName, Key: keys.tunnelState(change.tunnelId), ...condition },
    };
  }

  private createStatus(change: StatusChange): TransactItem {
    const item: StatusItem = {
      ...change.next,
      ...(change.uptime ? { uptime: change.uptime } : {}),
      version: 1,
      updatedAt: change.now.toISOString(),
      alerts: Object.fromEntries(change.alerts.map((a) => [a.id, a])),
    };
    return {
      Put: {
        TableName: this.tableName,
        Item: { ...keys.tunnelStatus(change.tunnelId), ...item },
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    };
  }

  /**
   * Sets the record's fields and adds the new alerts, leaving the other outbox entries alone: their
   * claims and settles run concurrently and do not bump the version.
   */
  private updateStatus(change: StatusChange): TransactItem {
    const fields: (keyof StatusRecord)[] = ['state', 'since', 'lastSeenAt', 'error', 'source', 'incident'];
    const parts = replaceFields(fields, change.next);
    if (change.uptime) {
      parts.names['#uptime'] = 'uptime';
      parts.values[':uptime'] = change.uptime;
      parts.set.push('#uptime = :uptime');
    }
    Object.assign(parts.names, { '#version': 'version', '#updatedAt': 'updatedAt' });
    Object.assign(parts.values, {
      ':expected': change.expectedVersion,
      ':version': change.expectedVersion + 1,
      ':updatedAt': change.now.toISOString(),
    });
    parts.set.push('#version = :version', '#updatedAt = :updatedAt');
    if (change.alerts.length > 0) parts.names['#alerts'] = 'alerts';
    change.alerts.forEach((alert, i) => {
      parts.names[`#a${i}`] = alert.id;
      parts.values[`:a${i}`] = alert;
      parts.set.push(`#alerts.#a${i} = :a${i}`);
    });
    return {
      Update: {
        TableName: this.tableName,
        Key: keys.tunnelStatus(change.tunnelId),
        UpdateExpression: updateExpression(parts),
        ConditionExpression: '#version = :expected',
        ExpressionAttributeNames: parts.names,
        ExpressionAttributeValues: parts.values,
      },
    };
  }

  private async conditionalUpdate(
    input: Omit<ConstructorParameters<typeof UpdateCommand>[0], 'TableName'>,
  ): Promise<boolean> {
    try {
      await this.db.send(new UpdateCommand({ TableName: this.tableName, ...input }));
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw err;
    }
  }
}

/** One tunnel's row of a worker's TRAFFIC item, as `status.traffic` shows it. */
function trafficOf(item: WorkerTraffic | undefined, tunnelId: string): Traffic | undefined {
  const row = item?.tunnels[tunnelId];
  if (!item || !row) return undefined;
  const [sinceMs, connections, openConnections, bytesToService, bytesFromService] = row;
  return {
    since: new Date(sinceMs).toISOString(),
    connections,
    openConnections,
    bytesToService,
    bytesFromService,
    reportedAt: item.reportedAt,
  };
}

function lostRace(err: TransactionCanceledException): boolean {
  const reasons = err.CancellationReasons ?? [];
  return reasons.some((r) => r.Code === 'ConditionalCheckFailed' || r.Code === 'TransactionConflict');
}

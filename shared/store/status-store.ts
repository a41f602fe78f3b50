/**
 * Storage port of the status sweeper: tunnels by shard, their STATE and STATUS items and owner
 * heartbeats in batch reads, and the conditional writes that make transitions and alert deliveries
 * happen once however many sweepers run.
 */
import type { TunnelStateItem, WorkerHeartbeat } from '../gateway-items';
import type { TunnelEvent } from '../schemas';
import type { OutboxAlert, StatusItem, StatusRecord } from '../status-items';
import type { TunnelRecord } from '../tunnel';

/** What the status machine reads for one tunnel besides its configuration. */
export interface StatusSources {
  state?: TunnelStateItem;
  status?: StatusItem;
  /** The heartbeat of `state.owner`. */
  heartbeat?: WorkerHeartbeat;
}

export interface StatusItems extends Omit<StatusSources, 'heartbeat'> {
  /** Why an item of this tunnel could not be read (the item is left out). */
  invalid?: string;
}

/** Opaque position in a shard's listing. */
export type ShardCursor = Record<string, unknown>;

export interface ShardPage {
  items: TunnelRecord[];
  cursor?: ShardCursor;
}

export interface StatusChange {
  tunnelId: string;
  /** The STATUS version the change was computed from; 0 when there was no STATUS item. */
  expectedVersion: number;
  next: StatusRecord;
  /** Appended to the history in the same write. */
  events: TunnelEvent[];
  /** Added to the outbox in the same write. */
  alerts: OutboxAlert[];
  now: Date;
}

export interface AlertClaim {
  by: string;
  /** Epoch ms; after it another sweeper may take the alert over. */
  until: number;
}

export interface StatusStore {
  listShard(shard: number, cursor?: ShardCursor): Promise<ShardPage>;
  /**
   * STATE and STATUS items of many tunnels, by tunnel id, in batch reads. An item that fails
   * validation is named in `invalid` instead of failing the batch: one bad item must not silence
   * the alerts of every other tunnel read with it.
   */
  getStatusItems(ids: string[]): Promise<Map<string, StatusItems>>;
  getHeartbeats(workerIds: string[]): Promise<Map<string, WorkerHeartbeat>>;
  /**
   * Writes the next record, its events and new alerts at once, if the STATUS item is still at
   * `expectedVersion` and the tunnel still exists. False, writing nothing, when another sweeper
   * (or a delete) got there first.
   */
  recordChange(change: StatusChange): Promise<boolean>;
  /** Takes an alert for delivery if it is still at `rev` and unclaimed (or its claim expired). */
  claimAlert(
    tunnelId: string,
    alert: Pick<OutboxAlert, 'id' | 'rev'>,
    claim: AlertClaim,
    now: Date,
  ): Promise<boolean>;
  /**
   * Stores the outcome of a delivery if `claimedBy` still holds the claim: the alert's new entry,
   * or nothing once every sink is done. False when the claim was lost meanwhile.
   */
  settleAlert(
    tunnelId: string,
    alertId: string,
    claimedBy: string,
    next: OutboxAlert | undefined,
  ): Promise<boolean>;
}

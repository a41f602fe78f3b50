/**
 * Storage port of the status sweeper: tunnels by shard, their STATE and STATUS items and owner
 * heartbeats in batch reads, and the conditional writes that make transitions and alert deliveries
 * happen once however many sweepers run.
 */
import type { TunnelStateItem, WorkerHeartbeat } from '../gateway-items';
import type { Traffic, TunnelEvent, TunnelStateName } from '../schemas';
import type { OutboxAlert, StatusItem, StatusRecord } from '../status-items';
import type { TunnelRecord, TunnelType } from '../tunnel';
import type { TunnelSignals } from '../tunnel-signals';
import type { UptimeLedger } from '../uptime';
import type { UnreadableItem } from './read-items';
import type { CountMove } from './tunnel-counts';

/** What the status machine reads for one tunnel besides its configuration. */
export interface StatusSources {
  state?: TunnelStateItem;
  status?: StatusItem;
  /** The heartbeat of `state.owner`. */
  heartbeat?: WorkerHeartbeat;
  /** Further connectors' states, from the same STATE item (connectors.ts). */
  connectorStates?: Record<string, TunnelStateItem>;
  /** The STATE item's revision when only further connectors wrote it (`state` absent). */
  stateRev?: number;
  /** With further connectors: the heartbeat of every connector's owner. */
  heartbeats?: Map<string, WorkerHeartbeat>;
  /** What the gateways saw besides the state (read for the API's warnings, not by the sweeper). */
  signals?: TunnelSignals;
  /** What the owner counted through the tunnel (its TRAFFIC item), for the API's `status.traffic`. */
  traffic?: Traffic;
  /** STATE, STATUS or SIGNALS items of the tunnel that could not be read (and are left out above). */
  unreadable?: UnreadableItem[];
}

export type StatusItems = Omit<StatusSources, 'heartbeat' | 'heartbeats'>;

/** The workers whose heartbeats decide whether the tunnel's `up` states hold (primary and connectors). */
export function ownersToCheck(items: StatusItems): string[] {
  const states = [items.state, ...Object.values(items.connectorStates ?? {})];
  return states.flatMap((s) => (s?.state === 'up' && s.owner ? [s.owner] : []));
}

/** With the owners' heartbeats in `beats`: what the status machine reads for the tunnel. */
export function withHeartbeats(
  items: StatusItems,
  beats: ReadonlyMap<string, WorkerHeartbeat>,
): StatusSources {
  const sources: StatusSources = { ...items };
  const owner = items.state?.owner;
  const heartbeat = owner ? beats.get(owner) : undefined;
  if (heartbeat) sources.heartbeat = heartbeat;
  if (items.connectorStates) {
    sources.heartbeats = new Map(
      ownersToCheck(items).flatMap((o) => {
        const beat = beats.get(o);
        return beat ? [[o, beat] as const] : [];
      }),
    );
  }
  return sources;
}

/** Opaque position in a shard's listing. */
export type ShardCursor = Record<string, unknown>;

export interface ShardPage {
  items: TunnelRecord[];
  /** Tunnels of the page whose META item cannot be read; the others are swept. */
  unreadable: UnreadableItem[];
  cursor?: ShardCursor;
}

export interface StatusChange {
  tunnelId: string;
  /** The STATUS version the change was computed from; 0 when there was no STATUS item. */
  expectedVersion: number;
  /**
   * The STATE item the change was computed from (its `rev`; absent when there was none): the
   * change is recorded only while the STATE item is still that one.
   */
  readState: { rev?: number } | undefined;
  next: StatusRecord;
  /** The uptime ledger that goes with `next` (uptime.ts). */
  uptime?: UptimeLedger;
  /** Appended to the history in the same write. */
  events: TunnelEvent[];
  /** Added to the outbox in the same write. */
  alerts: OutboxAlert[];
  now: Date;
}

/**
 * How far the sweepers have seen: when the last sweep that read every shard ended, and since when
 * they have seen the table without a gap (after an outage, workers get time to beat again before
 * a stale heartbeat counts: see liveness.ts).
 */
export interface SweepMark {
  /** Epoch ms. */
  lastCompleteAt: number;
  /** Epoch ms. */
  observingSince: number;
}

/** How many tunnels of a type are in a state (the `tunnels` gauge and CloudWatch's `Tunnels`). */
export interface TunnelCount {
  state: TunnelStateName;
  type: TunnelType;
  count: number;
}

export interface AlertClaim {
  by: string;
  /** Epoch ms; after it another sweeper may take the alert over. */
  until: number;
}

export interface StatusStore {
  listShard(shard: number, cursor?: ShardCursor): Promise<ShardPage>;
  /** Tunnels of the shard whose status timer is due at `now` (the wake index). */
  listDue(shard: number, now: Date): Promise<string[]>;
  /** The tunnels by id; deleted ones are absent, unreadable ones named. */
  getTunnels(ids: string[]): Promise<{ found: Map<string, TunnelRecord>; unreadable: UnreadableItem[] }>;
  /** Every worker's latest heartbeat (fresh or not). */
  listWorkers(): Promise<WorkerHeartbeat[]>;
  /** The tunnels the worker has recorded `up` since its holds were last released. */
  holdsOf(workerId: string): Promise<string[]>;
  /** Forgets those holds: the sweeper has recorded what became of the tunnels. */
  releaseHolds(workerId: string, tunnelIds: string[]): Promise<void>;
  /**
   * Lists the STATUS item in the wake index at `wakeAt` (or takes it out), if its wake is still
   * `expected`; false, writing nothing, otherwise (another sweeper set it from a newer read).
   */
  setWake(tunnelId: string, wakeAt: number | undefined, expected: number | undefined): Promise<boolean>;
  /**
   * STATE and STATUS items (and SIGNALS with `signals`) of many tunnels, by tunnel id, in batch reads. An item that fails
   * validation is named in `unreadable` instead of failing the batch: one bad item must not silence
   * the alerts of every other tunnel read with it (read-items.ts).
   */
  getStatusItems(ids: string[], options?: { signals?: boolean }): Promise<Map<string, StatusItems>>;
  getHeartbeats(workerIds: string[]): Promise<Map<string, WorkerHeartbeat>>;
  getSweepMark(): Promise<SweepMark | undefined>;
  putSweepMark(mark: SweepMark): Promise<void>;
  /**
   * Tunnels by state and type, kept between full passes by `moveTunnelCounts`; empty before the
   * first full pass. A count moved by changes the full pass that set it had already seen may be
   * off by those until the next full pass sets it again.
   */
  getTunnelCounts(): Promise<TunnelCount[]>;
  /** Sets every count (a full pass, which saw every tunnel); states not given are 0. */
  putTunnelCounts(counts: TunnelCount[]): Promise<void>;
  /** Applies tunnels' moves between states (tunnel-counts.ts `movesOf`), all in one write. */
  moveTunnelCounts(moves: readonly CountMove[]): Promise<void>;
  /**
   * Writes the next record, its events and new alerts at once, if the STATUS item is still at
   * `expectedVersion`, the STATE item is still the one read, and the tunnel still exists. False,
   * writing nothing, when another sweeper, a worker's state write or a delete got there first.
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

/**
 * Storage port of the gateway workers: tunnel lookups across workspaces (SSH logins name a tunnel
 * id, not a workspace), connection state on transitions, and one heartbeat per worker.
 */
import type {
  LeaseItem,
  TunnelStateItem,
  WorkerCarries,
  WorkerHeartbeat,
  WorkerTraffic,
} from '../gateway-items';
import type { TunnelRecord } from '../tunnel';
import type { TunnelSignals } from '../tunnel-signals';
import type { UnreadableItem } from './read-items';
import type { TunnelChange } from './tunnel-changes';

/** Tunnels read by id: those found, and those stored but unreadable (neither is "deleted"). */
export interface TunnelsRead {
  found: Map<string, TunnelRecord>;
  unreadable: UnreadableItem[];
}

export interface GatewayStore {
  /** Throws `UnreadableItemError` when the tunnel is stored but cannot be read. */
  getTunnelById(id: string): Promise<TunnelRecord | undefined>;
  /** One batch read for many tunnels (reconciliation of what a worker holds). */
  getTunnelsByIds(ids: string[]): Promise<TunnelsRead>;
  /**
   * Records a transition of the connection (reverse) or lease (standard) that began at
   * `item.connectedAt`. Returns false, writing nothing, when a newer one already wrote: a stale
   * worker cannot overwrite a newer owner. A `down` is also kept as the item's `lastDown` (or an
   * `up` may bring the `lastDown` of a down it replaced unwritten), which later writes leave in
   * place. Every write bumps the item's `rev`.
   */
  writeState(tunnelId: string, item: TunnelStateItem): Promise<boolean>;
  /**
   * The same for a further connector of a reverse tunnel (connectors.ts): its own attribute of the
   * STATE item, over the same or an older connection of that connector only; bumps the item's `rev`.
   */
  writeConnectorState(tunnelId: string, connectorId: string, item: TunnelStateItem): Promise<boolean>;
  /**
   * Sets the given signals of the tunnel's SIGNALS item, each field on its own (others, written by
   * other gateways, stay). False, writing nothing, when the tunnel no longer exists.
   */
  writeSignals(tunnelId: string, signals: TunnelSignals): Promise<boolean>;
  /** Forgets a rotated-away key once the new one has logged in; no-op if it changed meanwhile. */
  retirePreviousKey(tunnelId: string, previousPublicKey: string): Promise<void>;
  /** The logged changes of tunnel records from `sinceMs` to `untilMs` (tunnel-changes.ts). */
  listTunnelChanges(sinceMs: number, untilMs: number): Promise<TunnelChange[]>;
  /** Writes the worker's heartbeat; its last one, with `stoppedAt`, tells the others it is gone. */
  putHeartbeat(beat: WorkerHeartbeat, ttlSeconds: number): Promise<void>;
  /** Writes the worker's per-tunnel traffic (replacing the last), expiring with its heartbeat. */
  putTraffic(traffic: WorkerTraffic, ttlSeconds: number): Promise<void>;
  /** Writes one shard of the reverse tunnels the worker carries (replacing the last), expiring after `ttlSeconds`. */
  putCarries(carries: WorkerCarries, ttlSeconds: number): Promise<void>;
  /** Shards of the tunnels workers carry, in batch reads; missing ones (expired, never written) are absent. */
  getCarries(refs: readonly { workerId: string; shard: number }[]): Promise<WorkerCarries[]>;
  getHeartbeats(workerIds: string[]): Promise<Map<string, WorkerHeartbeat>>;
  /** Every worker's latest heartbeat (fresh or not). */
  listWorkers(): Promise<WorkerHeartbeat[]>;

  /**
   * Every standard tunnel, enabled or not, read shard by shard (reads, never writes, grow with the
   * tunnel count; DynamoDB still reads the reverse tunnels' items to filter them out).
   */
  listStandardTunnels(): Promise<{ tunnels: TunnelRecord[]; unreadable: UnreadableItem[] }>;
  getLeases(tunnelIds: string[]): Promise<Map<string, LeaseItem>>;
  /** Takes the lease if it is free or still held by `staleOwner`; false if someone else won. */
  claimLease(tunnelId: string, owner: string, staleOwner: string | undefined, at: string): Promise<boolean>;
  /** Gives the lease up if `owner` still holds it. */
  releaseLease(tunnelId: string, owner: string): Promise<void>;
  /**
   * Offers the lease to any worker while `owner` keeps serving `connId` (`LeaseItem.handingOver`);
   * false if `owner` no longer holds it.
   */
  handOverLease(tunnelId: string, owner: string, connId: string): Promise<boolean>;
  /** The tunnels' STATE items (the primary connection's state), for those that have one. */
  getStates(tunnelIds: string[]): Promise<Map<string, TunnelStateItem>>;
  /** Pins the bastion host key seen on the first successful connection; false if one is pinned already. */
  pinHostKey(tunnelId: string, fingerprint: string): Promise<boolean>;
}

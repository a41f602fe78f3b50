/**
 * Storage port of the gateway workers: tunnel lookups across workspaces (SSH logins name a tunnel
 * id, not a workspace), connection state on transitions, and one heartbeat per worker.
 */
import type { TunnelStateItem, WorkerHeartbeat } from '../gateway-items';
import type { TunnelRecord } from '../tunnel';

export interface GatewayStore {
  getTunnelById(id: string): Promise<TunnelRecord | undefined>;
  /** One batch read for many tunnels (reconciliation of what a worker holds). */
  getTunnelsByIds(ids: string[]): Promise<Map<string, TunnelRecord>>;
  /**
   * Records a connection's transition. An `up` replaces any state of an older connection; a `down`
   * replaces only its own connection's state. Returns false, writing nothing, when a newer
   * connection owns the state (a stale worker cannot overwrite a newer owner).
   */
  writeState(tunnelId: string, item: TunnelStateItem): Promise<boolean>;
  /** Forgets a rotated-away key once the new one has logged in; no-op if it changed meanwhile. */
  retirePreviousKey(tunnelId: string, previousPublicKey: string): Promise<void>;
  putHeartbeat(beat: WorkerHeartbeat, ttlSeconds: number): Promise<void>;
  getHeartbeats(workerIds: string[]): Promise<Map<string, WorkerHeartbeat>>;
}

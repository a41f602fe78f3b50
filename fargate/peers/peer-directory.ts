/**
 * Which reverse tunnels the other live gateways carry (what each advertises: peer-carries.ts): this
 * gateway listens on those tunnels' ports too and relays each platform connection to one of them,
 * so a connection to any gateway reaches the tunnel wherever its connectors are. Pure.
 */
import type { WorkerHeartbeat } from '../../shared/gateway-items';
import { type LivenessSettings, type LivenessView, workerLiveness } from '../../shared/liveness';
import type { CarriedTunnel } from '../../shared/worker-carries';

/** A gateway to relay to: its internal control endpoint. */
export interface PeerRef {
  workerId: string;
  controlUrl: string;
}

export interface PeerHolding {
  port: number;
  peers: PeerRef[];
}

/** The heartbeats of the live peers (not `selfId`, not stopped, not stale) with a control endpoint. */
export function livePeerBeats(
  workers: readonly WorkerHeartbeat[],
  selfId: string,
  view: LivenessView,
  settings: LivenessSettings,
): (WorkerHeartbeat & { controlUrl: string })[] {
  return workers.flatMap((beat) =>
    beat.workerId !== selfId && beat.controlUrl && workerLiveness(beat, view, settings).isAlive
      ? [{ ...beat, controlUrl: beat.controlUrl }]
      : [],
  );
}

/** Tunnels the live peers carry, with the peers carrying each. */
export function peerHoldings(
  peers: readonly (WorkerHeartbeat & { controlUrl: string })[],
  carried: ReadonlyMap<string, readonly CarriedTunnel[]>,
): Map<string, PeerHolding> {
  const holdings = new Map<string, PeerHolding>();
  for (const beat of peers) {
    const peer = { workerId: beat.workerId, controlUrl: beat.controlUrl };
    for (const [tunnelId, port] of carried.get(beat.workerId) ?? []) {
      const holding = holdings.get(tunnelId) ?? { port, peers: [] };
      holding.peers.push(peer);
      holdings.set(tunnelId, holding);
    }
  }
  return holdings;
}

/** The live peers (not `selfId`, not stopped, not stale) with a control endpoint. */
export function livePeers(
  workers: readonly WorkerHeartbeat[],
  selfId: string,
  view: LivenessView,
  settings: LivenessSettings,
): PeerRef[] {
  return livePeerBeats(workers, selfId, view, settings).map(({ workerId, controlUrl }) => ({
    workerId,
    controlUrl,
  }));
}

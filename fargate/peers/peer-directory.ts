/**
 * Which reverse tunnels the other live gateways carry, from their heartbeats (`holds`): this
 * gateway listens on those tunnels' ports too and relays each platform connection to one of them,
 * so a connection to any gateway reaches the tunnel wherever its connectors are. Pure.
 */
import type { WorkerHeartbeat } from '../../shared/gateway-items';
import { type LivenessSettings, type LivenessView, workerLiveness } from '../../shared/liveness';

/** A gateway to relay to: its internal control endpoint. */
export interface PeerRef {
  workerId: string;
  controlUrl: string;
}

export interface PeerHolding {
  port: number;
  peers: PeerRef[];
}

/** Tunnels the live peers (not `selfId`, not stopped, not stale) carry, with the peers carrying each. */
export function peerHoldings(
  workers: readonly WorkerHeartbeat[],
  selfId: string,
  view: LivenessView,
  settings: LivenessSettings,
): Map<string, PeerHolding> {
  const holdings = new Map<string, PeerHolding>();
  for (const beat of workers) {
    if (beat.workerId === selfId || !beat.controlUrl || !beat.holds) continue;
    if (!workerLiveness(beat, view, settings).isAlive) continue;
    const peer = { workerId: beat.workerId, controlUrl: beat.controlUrl };
    for (const [tunnelId, port] of beat.holds) {
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
  return workers.flatMap((beat) =>
    beat.workerId !== selfId && beat.controlUrl && workerLiveness(beat, view, settings).isAlive
      ? [{ workerId: beat.workerId, controlUrl: beat.controlUrl }]
      : [],
  );
}

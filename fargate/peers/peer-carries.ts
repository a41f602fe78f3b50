/**
 * What the live peers carry, kept from one read to the next: a peer's shard is read again only when
 * its heartbeat advertises a new revision (shared/worker-carries.ts), so steady peers cost one
 * small query a beat whatever their tunnel count. A shard that cannot be read keeps what was known
 * and is read again next time.
 */
import type { WorkerCarries, WorkerHeartbeat } from '../../shared/gateway-items';
import type { CarriedTunnel } from '../../shared/worker-carries';

interface Known {
  revs: string[];
  shards: CarriedTunnel[][];
}

export class PeerCarries {
  private readonly known = new Map<string, Known>();

  constructor(
    private readonly getCarries: (refs: { workerId: string; shard: number }[]) => Promise<WorkerCarries[]>,
  ) {}

  /** Each peer's carried tunnels, for the heartbeats of the live peers; forgets the others. */
  async carriedBy(peers: readonly WorkerHeartbeat[]): Promise<Map<string, CarriedTunnel[]>> {
    const live = new Set(peers.map((p) => p.workerId));
    for (const id of this.known.keys()) if (!live.has(id)) this.known.delete(id);
    const wanted: { workerId: string; shard: number }[] = [];
    for (const peer of peers) {
      if (!peer.carries) continue;
      const known = this.knownOf(peer.workerId, peer.carries.length);
      peer.carries.forEach((rev, shard) => {
        if (rev === known.revs[shard]) return;
        if (rev === '') {
          known.revs[shard] = '';
          known.shards[shard] = [];
        } else wanted.push({ workerId: peer.workerId, shard });
      });
    }
    for (const item of await this.getCarries(wanted)) {
      const known = this.known.get(item.workerId);
      if (!known || item.shard >= known.revs.length) continue;
      // Possibly newer than the heartbeat that named it: its own revision says what it holds.
      known.revs[item.shard] = item.rev;
      known.shards[item.shard] = item.holds;
    }
    const carried = new Map<string, CarriedTunnel[]>();
    for (const peer of peers) {
      // A gateway of the previous version advertises its tunnels in the heartbeat itself.
      if (!peer.carries) carried.set(peer.workerId, peer.holds ?? []);
      else carried.set(peer.workerId, this.known.get(peer.workerId)?.shards.flat() ?? []);
    }
    return carried;
  }

  private knownOf(workerId: string, shards: number): Known {
    let known = this.known.get(workerId);
    if (!known || known.revs.length !== shards) {
      known = {
        revs: Array.from({ length: shards }, () => ''),
        shards: Array.from({ length: shards }, () => []),
      };
      this.known.set(workerId, known);
    }
    return known;
  }
}

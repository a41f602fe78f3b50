/**
 * How a worker tells its peers which reverse tunnels it carries, at a cost that follows change: the
 * list is split by tunnel id into `CARRIES_SHARDS` items, and the heartbeat names each item's
 * revision. A worker rewrites only the shards whose tunnels changed; a peer reads only the shards
 * whose revision moved. 10,000 tunnels make shards of about 10 KB, under DynamoDB's 400 KB by far.
 * The shards are kept as the tunnels come and go (`CarriedShards`), so a heartbeat of a gateway with
 * 10,000 idle tunnels neither lists nor hashes them again. Pure.
 */
import { createHash } from 'node:crypto';

export const CARRIES_SHARDS = 32;

export type CarriedTunnel = [tunnelId: string, port: number];

/** The shard of a tunnel id (FNV-1a: stable across processes and versions). */
export function carriesShardOf(tunnelId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < tunnelId.length; i++) {
    hash ^= tunnelId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % CARRIES_SHARDS;
}

/** A shard's revision: a digest of its content; `''` when it carries nothing (no item to read). */
export function carriesRev(shard: readonly CarriedTunnel[]): string {
  if (shard.length === 0) return '';
  return createHash('sha256').update(JSON.stringify(shard)).digest('base64url').slice(0, 16);
}

const byId = ([a]: CarriedTunnel, [b]: CarriedTunnel) => (a < b ? -1 : a > b ? 1 : 0);

/** A shard as written: its tunnels sorted by id (so a revision names its content), and its revision. */
export interface CarriedShard {
  holds: CarriedTunnel[];
  rev: string;
}

/**
 * The tunnels a gateway carries, kept split in their shards as they change; a shard's sorted list
 * and revision are computed again only after a change to it.
 */
export class CarriedShards {
  private readonly shards: Map<string, number>[] = Array.from({ length: CARRIES_SHARDS }, () => new Map());
  /** Per shard, what `shard` computed, until the shard changes. */
  private readonly computed: (CarriedShard | undefined)[] = new Array(CARRIES_SHARDS).fill(undefined);
  private count = 0;

  static of(tunnels: readonly CarriedTunnel[]): CarriedShards {
    const carried = new CarriedShards();
    for (const [tunnelId, port] of tunnels) carried.set(tunnelId, port);
    return carried;
  }

  get size(): number {
    return this.count;
  }

  has(tunnelId: string): boolean {
    return this.shards[carriesShardOf(tunnelId)]?.has(tunnelId) ?? false;
  }

  set(tunnelId: string, port: number): void {
    const index = carriesShardOf(tunnelId);
    const shard = this.shards[index];
    if (!shard || shard.get(tunnelId) === port) return;
    if (!shard.has(tunnelId)) this.count++;
    shard.set(tunnelId, port);
    this.computed[index] = undefined;
  }

  delete(tunnelId: string): void {
    const index = carriesShardOf(tunnelId);
    if (!this.shards[index]?.delete(tunnelId)) return;
    this.count--;
    this.computed[index] = undefined;
  }

  /** Shard `index` (0 to CARRIES_SHARDS - 1). */
  shard(index: number): CarriedShard {
    let shard = this.computed[index];
    if (!shard) {
      const holds = [...(this.shards[index] ?? [])].sort(byId);
      shard = { holds, rev: carriesRev(holds) };
      this.computed[index] = shard;
    }
    return shard;
  }
}

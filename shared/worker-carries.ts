/**
 * How a worker tells its peers which reverse tunnels it carries, at a cost that follows change: the
 * list is split by tunnel id into `CARRIES_SHARDS` items, and the heartbeat names each item's
 * revision. A worker rewrites only the shards whose tunnels changed; a peer reads only the shards
 * whose revision moved. 10,000 tunnels make shards of about 10 KB, under DynamoDB's 400 KB by far.
 * Pure.
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

/** The tunnels split into their shards, each sorted by id (so a revision names its content). */
export function splitCarried(tunnels: readonly CarriedTunnel[]): CarriedTunnel[][] {
  const shards: CarriedTunnel[][] = Array.from({ length: CARRIES_SHARDS }, () => []);
  for (const tunnel of tunnels) shards[carriesShardOf(tunnel[0])]?.push(tunnel);
  for (const shard of shards) shard.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return shards;
}

/** A shard's revision: a digest of its content; `''` when it carries nothing (no item to read). */
export function carriesRev(shard: readonly CarriedTunnel[]): string {
  if (shard.length === 0) return '';
  return createHash('sha256').update(JSON.stringify(shard)).digest('base64url').slice(0, 16);
}

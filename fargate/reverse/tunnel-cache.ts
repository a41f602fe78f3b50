/**
 * The tunnel records this gateway read recently, for static stability: when storage is down, a
 * customer whose tunnel was read within the TTL can still log in (their autossh reconnecting after
 * a network blip must not fail because DynamoDB blinked). Bounded (least recently read go first)
 * and only ever consulted when a read failed with an outage, never instead of an answer.
 */
import type { TunnelRecord } from '../../shared/tunnel';

export interface TunnelCacheSettings {
  maxTunnels: number;
  ttlMs: number;
}

interface Entry {
  record: TunnelRecord;
  readAt: number;
}

export class TunnelCache {
  /** Insertion order is read order: the first entry was read longest ago. */
  private readonly entries = new Map<string, Entry>();
  /** Every entry not forgotten since was still the stored record at this time (epoch ms). */
  private confirmedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly settings: TunnelCacheSettings,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Storage answered with this record. */
  remember(record: TunnelRecord): void {
    if (this.settings.maxTunnels <= 0 || this.settings.ttlMs <= 0) return;
    this.entries.delete(record.id);
    this.entries.set(record.id, { record, readAt: this.now() });
    while (this.entries.size > this.settings.maxTunnels) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /** Storage answered that the tunnel does not exist. */
  forget(id: string): void {
    this.entries.delete(id);
  }

  /**
   * The table's log of changes says which tunnels changed up to `atMs` (fargate/tunnel-change-follower.ts):
   * those are forgotten, and every other entry was still current then, as if read at that time.
   */
  confirmUnchanged(atMs: number, changedIds: readonly string[]): void {
    for (const id of changedIds) this.entries.delete(id);
    this.confirmedAt = Math.max(this.confirmedAt, atMs);
  }

  /** The record as last read or confirmed, if that was within the TTL. */
  recall(id: string): { record: TunnelRecord; ageMs: number } | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    const ageMs = this.now() - Math.max(entry.readAt, this.confirmedAt);
    if (ageMs > this.settings.ttlMs) {
      this.entries.delete(id);
      return undefined;
    }
    return { record: entry.record, ageMs };
  }
}

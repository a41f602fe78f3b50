/**
 * The tunnel records this gateway read recently, for static stability: when storage is down, a
 * customer whose tunnel was read within the TTL can still log in (their autossh reconnecting after
 * a network blip must not fail because DynamoDB blinked). Bounded (least recently read go first)
 * and only ever consulted when a read failed with an outage, never instead of an answer.
 */
import type { TunnelChange } from '../../shared/store/tunnel-changes';
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
  /** The newest version of each tunnel the change log's last poll named (Infinity: deleted). */
  private named = new Map<string, number>();

  constructor(
    private readonly settings: TunnelCacheSettings,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Storage answered with this record. An answer older than a change the log names is not kept:
   * its read started before that change landed.
   */
  remember(record: TunnelRecord): void {
    if (this.settings.maxTunnels <= 0 || this.settings.ttlMs <= 0) return;
    if (record.version < (this.named.get(record.id) ?? Number.NEGATIVE_INFINITY)) return;
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
   * The table's log of changes has every change up to `atMs` (fargate/tunnel-change-follower.ts):
   * records older than a change it names are forgotten, and every other entry was still current
   * then, as if read at that time. Its polls overlap, so a change is named for a while: a record
   * read after the change landed stays, whatever poll named it first.
   */
  confirmUnchanged(atMs: number, changes: readonly TunnelChange[]): void {
    const named = new Map<string, number>();
    for (const { tunnelId, version = Number.POSITIVE_INFINITY } of changes) {
      named.set(tunnelId, Math.max(version, named.get(tunnelId) ?? version));
    }
    for (const [id, version] of named) {
      const entry = this.entries.get(id);
      if (entry && entry.record.version < version) this.entries.delete(id);
    }
    this.named = named;
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

/**
 * How a login finds its tunnel: a storage read with a deadline, shared by concurrent logins of the
 * same tunnel, remembered in the tunnel cache; when storage is out (and only then), the cached
 * record if it is recent, else a clear "unavailable" instead of anything that looks like a key
 * problem. Errors that are answers (an item that does not parse, a bad request) are thrown.
 */
import { StorageUnavailableError, type StorageUnavailableReason } from '../../shared/errors';
import { outageReason } from '../../shared/store/storage-outage';
import type { TunnelChange } from '../../shared/store/tunnel-changes';
import type { TunnelRecord } from '../../shared/tunnel';
import type { TunnelCache } from './tunnel-cache';

export type TunnelLookupResult =
  | { outcome: 'read'; tunnel: TunnelRecord | undefined }
  | { outcome: 'cached'; tunnel: TunnelRecord; ageMs: number; cause: unknown }
  | { outcome: 'unavailable'; cause: unknown };

export interface TunnelLookupDeps {
  read: (id: string) => Promise<TunnelRecord | undefined>;
  cache: TunnelCache;
  /** A read still unanswered after this counts as an outage (the SDK alone may wait much longer). */
  timeoutMs: number;
  /** Reads in flight at once; more are answered as an outage (bounded memory when storage hangs). */
  maxInFlight: number;
}

export class TunnelLookup {
  private readonly inFlight = new Map<string, Promise<TunnelRecord | undefined>>();

  constructor(private readonly deps: TunnelLookupDeps) {}

  async find(id: string): Promise<TunnelLookupResult> {
    let read = this.inFlight.get(id);
    if (!read) {
      if (this.inFlight.size >= this.deps.maxInFlight) {
        return this.fallback(
          id,
          outage('throttled', `${this.inFlight.size} tunnel reads already waiting for storage`),
        );
      }
      read = this.deps.read(id);
      const shared = read;
      this.inFlight.set(id, shared);
      shared.then(
        () => this.settled(id, shared),
        () => this.settled(id, shared),
      );
    }
    let tunnel: TunnelRecord | undefined;
    try {
      tunnel = await withDeadline(read, this.deps.timeoutMs, `tunnel ${id} read`);
    } catch (err) {
      if (outageReason(err) === undefined) throw err;
      return this.fallback(id, err);
    }
    if (tunnel) this.deps.cache.remember(tunnel);
    else this.deps.cache.forget(id);
    return { outcome: 'read', tunnel };
  }

  /** Records read elsewhere (the heartbeat's check of held tunnels): `ids` absent from `records` are gone. */
  sawRecords(ids: readonly string[], records: ReadonlyMap<string, TunnelRecord>): void {
    for (const id of ids) {
      const record = records.get(id);
      if (record) this.deps.cache.remember(record);
      else this.deps.cache.forget(id);
    }
  }

  /** The change log has every change up to `atMs`; its latest poll read `changes`. */
  confirmUnchanged(atMs: number, changes: readonly TunnelChange[]): void {
    this.deps.cache.confirmUnchanged(atMs, changes);
  }

  private fallback(id: string, cause: unknown): TunnelLookupResult {
    const cached = this.deps.cache.recall(id);
    if (cached) return { outcome: 'cached', tunnel: cached.record, ageMs: cached.ageMs, cause };
    return { outcome: 'unavailable', cause };
  }

  private settled(id: string, read: Promise<TunnelRecord | undefined>): void {
    if (this.inFlight.get(id) === read) this.inFlight.delete(id);
  }
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(outage('unreachable', `${what} took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** An outage of our own finding (a read past its deadline, too many reads waiting). */
function outage(reason: StorageUnavailableReason, what: string): StorageUnavailableError {
  return new StorageUnavailableError(reason, { cause: new Error(what) });
}

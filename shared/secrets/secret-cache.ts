/**
 * Secret reads kept in memory for a while, for the gateway's hot paths: a standard tunnel reads its
 * credentials on every connect and reconnect, and every `POST .../test` reads them again; Secrets
 * Manager bills each call and throttles a burst (a gateway restart reconnects all its tunnels).
 *
 * Each value is kept under the version of what it belongs to, which the caller names (for a tunnel
 * secret, the key fingerprint in the tunnel's record): a read with another version goes to the store
 * at once, so a change the caller can see is never served from memory. The TTL bounds what the
 * caller cannot see; `recheck` covers a change the store has and the caller's record does not yet.
 * Bounded in entries (least recently used go first). Failures are never kept: the next read tries
 * the store again. Reads of one name at once share one store call. Values are never logged.
 */
import type { SecretStore } from './secret-store';

export interface SecretCacheSettings {
  /** How long a value is served from memory at most, counted from when its store read began. */
  ttlMs: number;
  /** Most names held at once; the least recently used is dropped first. */
  maxEntries: number;
}

/** `hit`: answered from memory or by joining a store read in flight; `miss`: a store read of its own. */
export type SecretReadResult = 'hit' | 'miss';

export interface SecretReadCounter {
  secretRead(result: SecretReadResult): void;
}

export interface SecretRead {
  value: string;
  /**
   * Served from memory and not confirmed against the store since: when it fails (the bastion
   * refuses the key), `recheck` may find a newer value.
   */
  mayBeStale: boolean;
}

interface Entry {
  version: string;
  /** When the store read began: the value was current at least then. */
  readAt: number;
  /** What a `recheck` loaded is not rechecked again within its TTL. */
  origin: 'read' | 'recheck';
  /** The store read: concurrent reads of the same version join it while it is in flight. */
  promise: Promise<string>;
  /** Set once the store answered. */
  value?: string;
}

export class SecretCache {
  /** Insertion order is recency of use: the first entry was used longest ago. */
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly store: SecretStore,
    private readonly settings: SecretCacheSettings,
    private readonly options: { now?: () => number; counter?: SecretReadCounter } = {},
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The value of `name` as of `version`: from memory when held for that version within the TTL. */
  async read(name: string, version: string): Promise<SecretRead> {
    const entry = this.entries.get(name);
    if (entry && entry.version === version && this.isFresh(entry)) {
      this.touch(name, entry);
      this.options.counter?.secretRead('hit');
      if (entry.value !== undefined) return { value: entry.value, mayBeStale: entry.origin === 'read' };
      return { value: await entry.promise, mayBeStale: false };
    }
    return { value: await this.load(name, version, 'read'), mayBeStale: false };
  }

  /**
   * `failed` (what `read` gave) did not work: reads the store again when it came from memory. A value
   * a recheck loaded is not rechecked again within its TTL, so a key refused for good costs one more
   * store read per TTL, not one per attempt. Resolves with the store's value when it differs from
   * `failed` (worth another try), else undefined.
   */
  async recheck(name: string, version: string, failed: SecretRead): Promise<string | undefined> {
    if (!failed.mayBeStale) return undefined;
    const entry = this.entries.get(name);
    let value: string | undefined;
    if (entry && entry.version === version && entry.origin === 'recheck' && this.isFresh(entry)) {
      // Another caller rechecked already (the runner and a `/test` failing together).
      this.options.counter?.secretRead('hit');
      value = entry.value ?? (await entry.promise);
    } else {
      value = await this.load(name, version, 'recheck');
    }
    return value === failed.value ? undefined : value;
  }

  /** Writes through: the store first, then memory, so a failed write leaves nothing stale behind. */
  async put(name: string, version: string, value: string): Promise<void> {
    this.entries.delete(name);
    await this.store.put(name, value);
    this.remember(name, {
      version,
      readAt: this.now(),
      origin: 'read',
      promise: Promise.resolve(value),
      value,
    });
  }

  /** Drops what is held for `name` (only if held for `version`, when given). */
  forget(name: string, version?: string): void {
    const entry = this.entries.get(name);
    if (entry && (version === undefined || entry.version === version)) this.entries.delete(name);
  }

  private load(name: string, version: string, origin: Entry['origin']): Promise<string> {
    const readAt = this.now();
    const promise = this.store.get(name).then(
      (value) => {
        // A newer read, a write or a forget may have replaced this entry meanwhile: then it is not kept.
        if (this.entries.get(name) === entry) entry.value = value;
        return value;
      },
      (err: unknown) => {
        if (this.entries.get(name) === entry) this.entries.delete(name);
        throw err;
      },
    );
    const entry: Entry = { version, readAt, origin, promise };
    this.remember(name, entry);
    this.options.counter?.secretRead('miss');
    return promise;
  }

  private remember(name: string, entry: Entry): void {
    this.entries.delete(name);
    this.entries.set(name, entry);
    while (this.entries.size > this.settings.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  private touch(name: string, entry: Entry): void {
    this.entries.delete(name);
    this.entries.set(name, entry);
  }

  /** A read in flight is always fresh: it is the store's answer of now. */
  private isFresh(entry: Entry): boolean {
    return entry.value === undefined || this.now() - entry.readAt < this.settings.ttlMs;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}

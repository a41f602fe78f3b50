/**
 * A map keyed by outside input (tunnel ids of logins, sources) that keeps at most `max` entries:
 * the least recently set go first. What the gateway remembers per tunnel to decide whether a signal
 * changed; forgetting an entry only costs one more write when that tunnel's signal comes again.
 */
export class BoundedMap<K, V> {
  /** Insertion order is recency: the first entry was set longest ago. */
  private readonly entries = new Map<K, V>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    return this.entries.get(key);
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  delete(key: K): void {
    this.entries.delete(key);
  }
}

/**
 * Token-bucket rate limiting per caller, in memory: a per-instance guard against runaway clients
 * (API Gateway throttling is the global one). Buckets are bounded in number.
 */

export interface RateLimitSettings {
  /** Sustained requests per second per caller. */
  ratePerSec: number;
  /** Burst size. */
  burst: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private static readonly MAX_BUCKETS = 10_000;

  constructor(
    private readonly settings: RateLimitSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`; returns 0 when allowed, else the seconds to wait. */
  take(key: string): number {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.settings.burst, at: now };
    bucket.tokens = Math.min(
      this.settings.burst,
      bucket.tokens + ((now - bucket.at) / 1000) * this.settings.ratePerSec,
    );
    bucket.at = now;
    this.buckets.delete(key); // re-insert: Map order doubles as least-recently-used order
    if (this.buckets.size >= RateLimiter.MAX_BUCKETS) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return Math.ceil((1 - bucket.tokens) / this.settings.ratePerSec);
    bucket.tokens -= 1;
    return 0;
  }
}

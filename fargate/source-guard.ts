/**
 * Bounds on what unauthenticated clients may hold, and a slowdown for sources that keep failing
 * to log in. Valid logins are never delayed, so a flood of bad attempts from a shared address
 * (a NAT, a bastion) does not lock out the customer behind it.
 */

export interface SourceGuardSettings {
  /** Unauthenticated connections at once, in all (like sshd's MaxStartups). */
  maxUnauthenticated: number;
  /** Unauthenticated connections at once from one source address. */
  maxUnauthenticatedPerSource: number;
  /** Failures per source within `failureWindowMs` before each further failure is delayed. */
  failuresBeforeDelay: number;
  failureWindowMs: number;
  /** Cap of the delay added to a failed attempt (grows with the failure count). */
  maxFailureDelayMs: number;
}

export const DEFAULT_SOURCE_GUARD: SourceGuardSettings = {
  maxUnauthenticated: 1000,
  maxUnauthenticatedPerSource: 200,
  failuresBeforeDelay: 10,
  failureWindowMs: 60_000,
  maxFailureDelayMs: 2_000,
};

/** Remembered sources are bounded; the oldest are forgotten first. */
const MAX_TRACKED_SOURCES = 10_000;

export class SourceGuard {
  private unauthenticated = 0;
  private readonly perSource = new Map<string, number>();
  private readonly failures = new Map<string, { count: number; windowStart: number }>();

  constructor(
    private readonly settings: SourceGuardSettings,
    private readonly now: () => number = Date.now,
  ) {}

  get unauthenticatedCount(): number {
    return this.unauthenticated;
  }

  /** Admits a new connection, or returns why not. Admitted ones must be `release`d exactly once. */
  admit(source: string): { ok: true } | { ok: false; reason: string } {
    if (this.unauthenticated >= this.settings.maxUnauthenticated) {
      return { ok: false, reason: 'too many unauthenticated connections' };
    }
    const mine = this.perSource.get(source) ?? 0;
    if (mine >= this.settings.maxUnauthenticatedPerSource) {
      return { ok: false, reason: 'too many unauthenticated connections from this source' };
    }
    this.unauthenticated++;
    this.perSource.set(source, mine + 1);
    return { ok: true };
  }

  /** The connection authenticated or closed: it no longer counts as unauthenticated. */
  release(source: string): void {
    this.unauthenticated--;
    const mine = (this.perSource.get(source) ?? 1) - 1;
    if (mine <= 0) this.perSource.delete(source);
    else this.perSource.set(source, mine);
  }

  /** Records a failed attempt; returns how long to wait before answering it. */
  recordFailure(source: string): number {
    const now = this.now();
    let entry = this.failures.get(source);
    if (!entry || now - entry.windowStart > this.settings.failureWindowMs)
      entry = { count: 0, windowStart: now };
    entry.count++;
    this.failures.delete(source); // re-insert: Map order doubles as least-recently-used order
    this.failures.set(source, entry);
    if (this.failures.size > MAX_TRACKED_SOURCES) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    const over = entry.count - this.settings.failuresBeforeDelay;
    return over <= 0 ? 0 : Math.min(this.settings.maxFailureDelayMs, 100 * 2 ** Math.min(over, 10));
  }
}

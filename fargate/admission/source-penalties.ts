/**
 * Penalties for sources that misbehave, after OpenSSH's PerSourcePenalties (srclimit.c): each
 * offence adds time to the source's outstanding penalty, up to a cap; the penalty counts once it
 * exceeds an activation threshold (one slip is not an attack) and lasts until it has run out.
 * Unlike sshd we never refuse a penalized source outright: a customer behind the same NAT as an
 * attacker would be locked out with it. A penalty shrinks the source's budget and makes its
 * connections the first to go instead (admission-control.ts).
 */

export type Offence = 'silent' | 'handshake-timeout' | 'auth-failure';

export interface PenaltySettings {
  /** Penalty each offence adds. */
  offenceMs: Record<Offence, number>;
  /** Outstanding penalty above which a source counts as penalized (sshd's `min`). */
  activationMs: number;
  /** Cap of a source's outstanding penalty (sshd's `max`). */
  maxMs: number;
  /** Sources remembered at most; beyond, the one that offended longest ago is forgotten. */
  maxSources: number;
  /** Failed logins per source within `failureWindowMs` before each further one is answered late. */
  failuresBeforeDelay: number;
  failureWindowMs: number;
  /** Cap of the delay added to a failed login (grows with the failure count). */
  maxFailureDelayMs: number;
}

/** sshd's defaults scaled to what each offence costs us: a silent connection holds a slot for the whole banner deadline. */
export const DEFAULT_PENALTIES: PenaltySettings = {
  offenceMs: { silent: 10_000, 'handshake-timeout': 10_000, 'auth-failure': 5_000 },
  activationMs: 15_000,
  maxMs: 600_000,
  maxSources: 10_000,
  failuresBeforeDelay: 10,
  failureWindowMs: 60_000,
  maxFailureDelayMs: 2_000,
};

interface SourceRecord {
  expiresAt: number;
  active: boolean;
  offence: Offence;
  failures: number;
  failureWindowStart: number;
}

export class SourcePenalties {
  /** Insertion order is offence order: the first entry offended longest ago. */
  private readonly records = new Map<string, SourceRecord>();

  constructor(
    private readonly settings: PenaltySettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** Sources currently remembered (bounded by `maxSources`). */
  get size(): number {
    return this.records.size;
  }

  /** Adds the offence's penalty to `source`; returns the outstanding penalty and whether it counts. */
  penalize(source: string, offence: Offence): { outstandingMs: number; active: boolean } {
    const now = this.now();
    const record = this.touch(source, now);
    if (record.expiresAt <= now) record.active = false; // the last penalty ran out: start afresh
    record.expiresAt = Math.min(
      Math.max(record.expiresAt, now) + this.settings.offenceMs[offence],
      now + this.settings.maxMs,
    );
    record.offence = offence;
    if (record.expiresAt - now > this.settings.activationMs) record.active = true;
    return { outstandingMs: record.expiresAt - now, active: record.active };
  }

  /** Outstanding penalty of an active penalty, else 0. */
  outstandingMs(source: string): number {
    const record = this.records.get(source);
    if (!record?.active) return 0;
    const left = record.expiresAt - this.now();
    if (left > 0) return left;
    record.active = false;
    return 0;
  }

  isPenalized(source: string): boolean {
    return this.outstandingMs(source) > 0;
  }

  /** The offence that last added to the source's penalty (for logs). */
  lastOffence(source: string): Offence | undefined {
    return this.records.get(source)?.offence;
  }

  /**
   * A failed login: penalized like any offence, and once the source keeps failing within the
   * window, answered late (returns how long to wait), so guessing is slow. Valid logins are never
   * delayed.
   */
  authFailure(source: string): number {
    const now = this.now();
    this.penalize(source, 'auth-failure');
    const record = this.records.get(source);
    if (!record) return 0;
    if (now - record.failureWindowStart > this.settings.failureWindowMs) {
      record.failures = 0;
      record.failureWindowStart = now;
    }
    record.failures++;
    const over = record.failures - this.settings.failuresBeforeDelay;
    return over <= 0 ? 0 : Math.min(this.settings.maxFailureDelayMs, 100 * 2 ** Math.min(over, 10));
  }

  /** The source's record, moved to the newest end; the oldest is forgotten when over the cap. */
  private touch(source: string, now: number): SourceRecord {
    let record = this.records.get(source);
    if (record) this.records.delete(source);
    else record = { expiresAt: now, active: false, offence: 'silent', failures: 0, failureWindowStart: now };
    this.records.set(source, record);
    while (this.records.size > this.settings.maxSources) {
      const oldest = this.records.keys().next().value;
      if (oldest === undefined) break;
      this.records.delete(oldest);
    }
    return record;
  }
}

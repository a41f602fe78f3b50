/**
 * Reconnect delays: exponential with full jitter between half and all of the step, capped, and
 * reset only after a connection stayed healthy for a while (so a flapping bastion backs off).
 */

export interface BackoffSettings {
  initialMs: number;
  maxMs: number;
  /** A connection up at least this long resets the delay to `initialMs`. */
  healthyAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffSettings = { initialMs: 1_000, maxMs: 60_000, healthyAfterMs: 60_000 };

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly settings: BackoffSettings,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call grows the step until the cap. */
  next(): number {
    const step = Math.min(this.settings.maxMs, this.settings.initialMs * 2 ** this.attempt);
    if (step < this.settings.maxMs) this.attempt++;
    return Math.round(step / 2 + (this.random() * step) / 2);
  }

  /** Starts over from the first step (someone fixed the cause and asked for a retry now). */
  reset(): void {
    this.attempt = 0;
  }

  /** Call when a connection ends: resets the step if it had been up long enough. */
  connectionEnded(upForMs: number): void {
    if (upForMs >= this.settings.healthyAfterMs) this.attempt = 0;
  }
}

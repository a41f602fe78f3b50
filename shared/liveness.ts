/**
 * When a gateway worker counts as gone: the one rule that the status machine (and with it the API
 * and the sweeper), the standard pool's leases and the tunnel test route all apply to a heartbeat.
 */
import type { WorkerHeartbeat } from './gateway-items';

export interface LivenessSettings {
  /** `HEARTBEAT_INTERVAL_MS`: how often every worker writes its heartbeat. */
  heartbeatIntervalMs: number;
  /** `SSH_KEEPALIVE_INTERVAL_MS`: bounds how late a dead worker may be noticed (CONTRACT.md). */
  keepaliveIntervalMs: number;
}

/**
 * How old a worker's last heartbeat may be before it counts as gone: two missed beats (one late
 * write is normal), plus a margin for write latency and clock skew between worker and reader; never
 * later than the contract's bound for noticing a dropped connection (3 keepalives and one
 * heartbeat), since a dead worker drops every connection it held.
 */
export function workerGoneAfterMs(settings: LivenessSettings): number {
  const { heartbeatIntervalMs: beat, keepaliveIntervalMs: keepalive } = settings;
  return Math.min(2 * beat + Math.min(beat, 5_000), 3 * keepalive + beat);
}

export type WorkerLiveness =
  | { isAlive: true }
  | {
      isAlive: false;
      /** `stopped`: shut down cleanly; `stale`: stopped heartbeating; `missing`: no heartbeat at all. */
      why: 'stopped' | 'stale' | 'missing';
      /** When it went: its stop, or its last heartbeat; absent when nothing says (`missing`). */
      since?: string;
      lastBeatAt?: string;
    };

export interface LivenessView {
  now: Date;
  /**
   * Since when the reader has seen the table without a gap (epoch ms). A heartbeat the reader could
   * not see, or that the worker could not write (the table was down for everyone), is no sign of a
   * dead worker: staleness counts from here at the earliest. Absent: no gap known.
   */
  observingSince?: number;
}

/** Whether the worker whose latest heartbeat is `beat` (absent: none found) is alive. */
export function workerLiveness(
  beat: WorkerHeartbeat | undefined,
  view: LivenessView,
  settings: LivenessSettings,
): WorkerLiveness {
  if (!beat) return { isAlive: false, why: 'missing' };
  if (beat.stoppedAt !== undefined) {
    return { isAlive: false, why: 'stopped', since: beat.stoppedAt, lastBeatAt: beat.lastBeatAt };
  }
  const seenFrom = Math.max(Date.parse(beat.lastBeatAt), view.observingSince ?? 0);
  if (view.now.getTime() - seenFrom > workerGoneAfterMs(settings)) {
    return { isAlive: false, why: 'stale', since: beat.lastBeatAt, lastBeatAt: beat.lastBeatAt };
  }
  return { isAlive: true };
}

/**
 * The fast clocks of the alert end-to-end tests (1 s keepalives and heartbeats, a sweep every
 * 500 ms) and the bounds CONTRACT.md derives from them. Each test picks its own grace.
 */
export const KEEPALIVE_MS = 1_000;
export const HEARTBEAT_MS = 1_000;
export const SWEEP_MS = 500;

/** The clocks of an `npm start` that status and alerts depend on. */
export interface AlertClocks {
  keepaliveMs: number;
  heartbeatMs: number;
  sweepMs: number;
}

export const ALERT_CLOCKS: AlertClocks = {
  keepaliveMs: KEEPALIVE_MS,
  heartbeatMs: HEARTBEAT_MS,
  sweepMs: SWEEP_MS,
};

/** CONTRACT.md, Status: down within SSH_KEEPALIVE_INTERVAL_MS × 3 + HEARTBEAT_INTERVAL_MS. */
export function downBoundMs(clocks: Pick<AlertClocks, 'keepaliveMs' | 'heartbeatMs'>): number {
  return clocks.keepaliveMs * 3 + clocks.heartbeatMs;
}

export const DOWN_BOUND_MS = downBoundMs(ALERT_CLOCKS);
/** After the grace, the alert waits for the next sweep (one interval) and its own run. */
export const ALERT_LATENCY_BOUND_MS = 3 * SWEEP_MS + 2_000;

/** The variables that put an `npm start` on these clocks (the fast ones unless given), with a grace of `graceMs`. */
export function alertTimingEnv(graceMs: number, clocks: AlertClocks = ALERT_CLOCKS): Record<string, string> {
  return {
    HEARTBEAT_INTERVAL_MS: String(clocks.heartbeatMs),
    SSH_KEEPALIVE_INTERVAL_MS: String(clocks.keepaliveMs),
    SWEEP_INTERVAL_MS: String(clocks.sweepMs),
    DOWN_GRACE_MS: String(graceMs),
    // `tunnel.up` at the first sweep that sees the recovery, as these tests expect (no hysteresis).
    RECOVERY_SETTLE_MS: '0',
  };
}

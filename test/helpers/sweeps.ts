/**
 * The sweeper logs `sweep finished` after every run (at debug level when nothing happened), so a
 * test that must show that something did *not* happen waits for sweeps to have run instead of
 * sleeping: N finished sweeps after a moment prove the sweeper looked N times since.
 */
import { waitFor } from './wait-for';

type Lines = readonly Record<string, unknown>[];

/** Sweeps finished so far according to these log lines. */
export function sweepsIn(lines: Lines): number {
  return lines.reduce((n, line) => (line.msg === 'sweep finished' ? n + 1 : n), 0);
}

/** Resolves once `count` more sweeps than now have finished in `lines` (a live array). */
export async function waitForMoreSweeps(lines: Lines, count: number, timeoutMs: number): Promise<void> {
  const target = sweepsIn(lines) + count;
  await waitFor(() => sweepsIn(lines) >= target, timeoutMs, {
    intervalMs: 20,
    what: `${count} more sweeps (seen ${sweepsIn(lines)} of ${target})`,
  });
}

/**
 * Resolves once a sweep that began after `at` (epoch ms) has finished, by the start its
 * `sweep finished` line implies (its time less its `ms`): that sweep looked at every tunnel
 * after whatever happened at `at`.
 */
export async function waitForSweepBegunAfter(lines: Lines, at: number, timeoutMs: number): Promise<void> {
  await waitFor(
    () =>
      lines.some(
        (line) =>
          line.msg === 'sweep finished' &&
          typeof line.time === 'string' &&
          typeof line.ms === 'number' &&
          Date.parse(line.time) - line.ms > at,
      ),
    timeoutMs,
    { intervalMs: 20, what: `a sweep begun after ${new Date(at).toISOString()}` },
  );
}

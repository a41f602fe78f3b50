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

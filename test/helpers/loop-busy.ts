/**
 * Whether work held an event loop, from the kernel's view of its thread (schedstat: ns on a CPU,
 * ns waiting for one). While the loop has work its thread is running or waiting for a CPU; idle, it
 * sleeps in epoll and is neither. The CPU spent in one such stretch is what held the loop (a key
 * derivation: seconds), however long a busy machine made the stretch last; time spent only waiting
 * for a CPU is the machine's doing. Wall-clock stalls alone cannot tell the two apart on a shared
 * machine, so tests and the chaos scenario assert on this.
 */
import { readFileSync } from 'node:fs';

export interface SchedSample {
  /** performance.now() of the reading. */
  at: number;
  runMs: number;
  waitMs: number;
}

export function parseSchedstat(text: string, at: number): SchedSample {
  const [run = 0, wait = 0] = text.trim().split(/\s+/).map(Number);
  return { at, runMs: run / 1e6, waitMs: wait / 1e6 };
}

/** Folds successive samples of one thread into its longest busy stretch and its runqueue wait. */
export class BusyStretches {
  private first: SchedSample | undefined;
  private previous: SchedSample | undefined;
  private stretchMs = 0;
  longestBusyMs = 0;

  add(sample: SchedSample): void {
    const previous = this.previous;
    this.first ??= sample;
    this.previous = sample;
    if (!previous) return;
    const ran = sample.runMs - previous.runMs;
    const hadWork = ran + (sample.waitMs - previous.waitMs) >= 0.8 * (sample.at - previous.at);
    this.stretchMs = hadWork ? this.stretchMs + ran : 0;
    this.longestBusyMs = Math.max(this.longestBusyMs, this.stretchMs);
  }

  get runqueueWaitMs(): number {
    return this.first && this.previous ? this.previous.waitMs - this.first.waitMs : 0;
  }
}

/**
 * Runs `work` while sampling this thread every 5 ms. Read synchronously on purpose: the file is
 * /proc/thread-self, which must be read by this thread (an async read runs on libuv's pool).
 */
export async function measureLoopBusy<T>(
  work: () => Promise<T>,
): Promise<{ value: T; longestBusyMs: number; longestStallMs: number }> {
  const stretches = new BusyStretches();
  const sample = () =>
    stretches.add(parseSchedstat(readFileSync('/proc/thread-self/schedstat', 'utf8'), performance.now()));
  let last = performance.now();
  let longestStallMs = 0;
  sample();
  const timer = setInterval(() => {
    const now = performance.now();
    longestStallMs = Math.max(longestStallMs, now - last);
    last = now;
    sample();
  }, 5);
  try {
    const value = await work();
    sample();
    longestStallMs = Math.max(longestStallMs, performance.now() - last);
    return { value, longestBusyMs: stretches.longestBusyMs, longestStallMs };
  } finally {
    clearInterval(timer);
  }
}

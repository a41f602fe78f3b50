/**
 * A key crypto thread: the entry esbuild bundles as `crypto-worker.mjs` beside the gateway bundle,
 * and what `crypto-worker.mjs` here loads through tsx when running from source.
 */
import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { describeKeyTaskFailure, keyTaskHandlers } from './key-tasks';
import { serveTasks } from './worker';

if (!parentPort) throw new Error('key-worker runs as a worker thread only');
// Lowest CPU priority for this thread alone (Linux keeps a nice value per thread, and 0 names the
// calling one): when key work and the event loop want the same core, the event loop that carries
// tunnel bytes and answers /healthz goes first, and the key work takes what is left.
try {
  setPriority(0, 19);
} catch {
  // Not permitted here: the pool still keeps the work off the event loop.
}
// Nice 19 alone loses on a machine with few cores: the kernel places a waking thread on an idle
// core, and a core running a nice-19 thread is not idle, so the event loop queued behind other
// processes on the other core while this thread had a core to itself (measured: the event loop
// waited ~20% of a burst). A SCHED_IDLE thread's core counts as idle, and any other thread preempts
// it at once. Node has no call for the policy: util-linux's chrt sets it for this thread's id.
try {
  const threadId = readlinkSync('/proc/thread-self').split('/').pop() ?? '';
  execFileSync('chrt', ['--idle', '--pid', '0', threadId], { stdio: 'ignore', timeout: 5_000 });
} catch {
  // No chrt, or not Linux: nice 19 still applies.
}
serveTasks(parentPort, keyTaskHandlers, describeKeyTaskFailure);

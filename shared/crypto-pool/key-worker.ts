/**
 * A key crypto thread: the entry esbuild bundles as `crypto-worker.mjs` beside the gateway bundle,
 * and what `crypto-worker.mjs` here loads through tsx when running from source.
 */
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
serveTasks(parentPort, keyTaskHandlers, describeKeyTaskFailure);

/**
 * A key crypto thread: the entry esbuild bundles as `crypto-worker.mjs` beside the gateway bundle,
 * and what `crypto-worker.mjs` here loads through tsx when running from source.
 */
import { parentPort } from 'node:worker_threads';
import { describeKeyTaskFailure, keyTaskHandlers } from './key-tasks';
import { serveTasks } from './worker';

if (!parentPort) throw new Error('key-worker runs as a worker thread only');
serveTasks(parentPort, keyTaskHandlers, describeKeyTaskFailure);

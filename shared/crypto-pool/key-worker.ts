/**
 * A key crypto worker process: the entry esbuild bundles as `crypto-worker.mjs` beside the gateway
 * bundle, and what `crypto-worker.mjs` here loads through tsx when running from source.
 */
import { describeKeyTaskFailure, keyTaskHandlers } from './key-tasks';
import { lowerOwnPriority, serveTasks } from './worker';

lowerOwnPriority();
serveTasks(keyTaskHandlers, describeKeyTaskFailure);

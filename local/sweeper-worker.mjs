/*
 * Entry of the sweeper thread, in JavaScript because a worker thread cannot load TypeScript by
 * itself: a Worker inherits `--import tsx` from `npm start`, but tsx registers its loader on the main
 * thread only (before Node 22.22 it cannot tell a worker from Node's own loader thread), and a test
 * runner that compiles TypeScript its own way passes nothing at all. tsImport loads the module
 * through tsx either way.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

if (!parentPort) throw new Error('sweeper-worker.mjs runs as a worker thread only');
const { runSweeperWorker } = await tsImport('./sweeper-worker.ts', import.meta.url);
runSweeperWorker(parentPort, workerData);

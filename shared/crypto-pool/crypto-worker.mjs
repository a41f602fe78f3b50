/*
 * Entry of a key crypto worker when running from source (npm start, tests), in JavaScript because
 * the pool starts it without this process's `--import tsx`: tsImport loads the worker's module
 * through tsx. The bundles put their own crypto-worker.mjs beside the bundle, built
 * from key-worker.ts, and pool.ts finds either one at the same relative name.
 */
import { tsImport } from 'tsx/esm/api';

await tsImport('./key-worker.ts', import.meta.url);

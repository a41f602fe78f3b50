/*
 * Entry of a key crypto thread when running from source (npm start, tests), in JavaScript because a
 * worker thread cannot load TypeScript by itself (see local/sweeper-worker.mjs): tsImport loads the
 * thread's module through tsx. The bundles put their own crypto-worker.mjs beside the bundle, built
 * from key-worker.ts, and pool.ts finds either one at the same relative name.
 */
import { tsImport } from 'tsx/esm/api';

await tsImport('./key-worker.ts', import.meta.url);

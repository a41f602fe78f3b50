import { defineConfig } from 'vitest/config';
import LongRunningFirst from './test/sequencer.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: end-to-end files start real processes, so keep parallelism modest (a third worker
    // made the whole run slower: every file's processes contended, start-ups went past 30 s).
    maxWorkers: 2,
    sequence: { sequencer: LongRunningFirst },
  },
});

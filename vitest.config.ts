import { defineConfig } from 'vitest/config';
import LongRunningFirst from './test/sequencer.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores, but the longest end-to-end files mostly wait (restarts, outages, grace periods):
    // a third worker fills those waits; more would make the timing-bound files contend.
    maxWorkers: 3,
    sequence: { sequencer: LongRunningFirst },
  },
});

/**
 * The order test files start in. On a clean clone (CI) vitest has no durations cached and starts
 * larger files first; the files that run for minutes (they wait out restarts and outages) are
 * small, so they started last and the run ended with one of them alone on a core for two minutes.
 * These start first; the rest follow vitest's own order (cached durations, else size).
 */
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { WAITING_FILES } from './lanes.mjs';

/** Longest first, from CI runs (seconds): a new file of minutes belongs here or in WAITING_FILES. */
export const LONG_RUNNING_FILES = [
  ...WAITING_FILES,
  'test/local/start.test.ts', // 67
  'test/lambda/sweeper/sweep.test.ts', // 48
  'test/fargate/reverse-abuse.test.ts', // 43
  'test/lambda/api/fuzz.test.ts', // 42
  'test/shared/keys.test.ts', // 40
  'test/fargate/standard/standard-e2e.test.ts', // 38
  'test/console/console-pages.test.ts', // 37
];

export default class LongRunningFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => {
      const index = LONG_RUNNING_FILES.indexOf(relative(this.ctx.config.root, file.moduleId));
      return index === -1 ? LONG_RUNNING_FILES.length : index;
    };
    const sorted = await super.sort(files);
    // Array.prototype.sort is stable: the others keep vitest's order.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}

/**
 * The order test files start in. On a clean clone (CI) vitest has no durations cached and starts
 * larger files first; the files that run for minutes (they wait out restarts and outages) are
 * small, so they started last and the run ended with one of them alone on a core for two minutes.
 * These start first; the rest follow vitest's own order (cached durations, else size).
 */
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Longest first, from CI runs (seconds): a new file of minutes belongs here. Not the 1,000-tunnel
 * gateway crash: `npm test` runs it alone after the rest (its thousand logins and pages kept the
 * shared DynamoDB Local so busy that the files beside it timed out).
 */
export const LONG_RUNNING_FILES = [
  'test/e2e/restarts.test.ts', // 257
  'test/e2e/storage-outage.test.ts', // 170
  'test/e2e/high-availability.test.ts', // 85
  'test/e2e/alerts-restart.test.ts', // 82
  'test/fargate/standard/standard-rotation-drain.test.ts', // 73 (a 60 s query)
  'test/local/start.test.ts', // 67
  'test/e2e/alerts-gateway-crash.test.ts', // 49
  'test/lambda/sweeper/sweep.test.ts', // 48
  'test/e2e/steady-writes.test.ts', // 45
  'test/fargate/standard/standard-failover.test.ts', // 44
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

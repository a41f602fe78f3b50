/**
 * The files `npm test` runs in its waiting lane (run-lanes.mjs): each spends minutes waiting out
 * restarts, outages, reconnects or graces with little CPU. Longest first (seconds in CI, one lane).
 */
export const WAITING_FILES = [
  'test/e2e/restarts.test.ts', // 257
  'test/e2e/storage-outage.test.ts', // 170
  'test/e2e/high-availability.test.ts', // 85
  'test/e2e/alerts-restart.test.ts', // 82
  'test/fargate/standard/standard-rotation-drain.test.ts', // 73 (a 60 s query)
  'test/e2e/alerts-gateway-crash.test.ts', // 49
  'test/e2e/steady-writes.test.ts', // 45
  'test/fargate/standard/standard-failover.test.ts', // 44
];

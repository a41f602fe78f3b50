/*
 * `npm test`: the suite in two vitest runs side by side. The files that spend minutes waiting (out
 * restarts, outages, reconnects and graces, with little CPU) run in a lane of their own, so the
 * CPU-bound files keep both cores' worth of workers instead of queueing behind them; in one run
 * they held two of its two workers for minutes. Each lane has its own DynamoDB Local (global setup).
 * With arguments (`npm test -- test/some.test.ts`), one plain vitest run.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { WAITING_FILES } from './lanes.mjs';

const args = process.argv.slice(2);
const vitest = (lane, vitestArgs, prefix) =>
  new Promise((resolve) => {
    const child = spawn('npx', ['vitest', 'run', ...vitestArgs], {
      stdio: ['ignore', prefix ? 'pipe' : 'inherit', prefix ? 'pipe' : 'inherit'],
      env: { ...process.env, TEST_LANE: lane },
    });
    if (prefix) {
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
      }
    }
    child.once('exit', (code, signal) => resolve({ lane, code: code ?? (signal ? 1 : 0) }));
  });

const runs =
  args.length > 0
    ? [vitest('all', args)]
    : [
        vitest(
          'main',
          WAITING_FILES.flatMap((file) => ['--exclude', file]),
        ),
        vitest('waiting', WAITING_FILES, '[waiting] '),
      ];
const results = await Promise.all(runs);
const failed = results.filter((r) => r.code !== 0);
for (const r of failed) console.error(`npm test: the ${r.lane} lane failed (exit ${r.code})`);
process.exit(failed.length > 0 ? 1 : 0);

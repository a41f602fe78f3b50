/** `npm start`: the whole system on this machine. Stops cleanly on SIGINT/SIGTERM within 10 s. */
import { parseEnv } from '../shared/config';
import { createLogger } from '../shared/logger';
import { runtimeMismatch } from './runtime-check';
import { stopOnSignals } from './shutdown';
import { startLocalStack } from './stack';

const SHUTDOWN_DEADLINE_MS = 9_000;
const PARENT_CHECK_MS = 500;

async function main(): Promise<void> {
  const env = parseEnv(process.env);
  const logger = createLogger(env.LOG_LEVEL);
  const mismatch = runtimeMismatch(new URL('../package.json', import.meta.url).pathname);
  if (mismatch) {
    logger.warn('running on another Node major than the one this repository is tested on', {
      ...mismatch,
      fix: 'run `npm ci`, then `npm start` (npm puts the pinned Node first on PATH)',
    });
  }
  const stack = await startLocalStack(env, logger, (credentials) => {
    // Deliberately outside the redacting logger: shown once, on first start, for the operator.
    process.stdout.write(
      `${JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: 'first start: save these credentials, they are not shown again', ...credentials })}\n`,
    );
  });
  void stack.buildConsoleNow();
  const shutdown = stopOnSignals(logger, () => stack.stop(), SHUTDOWN_DEADLINE_MS);
  // npm does not pass a SIGTERM sent to it on to us; it exits and leaves us orphaned. Notice that.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) shutdown('parent exited');
  }, PARENT_CHECK_MS).unref();
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`tunnelkeeper: failed to start: ${message}\n`);
  process.exit(1);
});

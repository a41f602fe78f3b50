/**
 * A clean stop on SIGINT/SIGTERM for the local entry points (`npm start`, `npm run gateway`): once,
 * within a deadline (then exit 1), logging `stopped` and exiting 0 when `stop` resolves.
 */
import type { Logger } from '../shared/logger';

/** Installs the signal handlers; returns the shutdown for other causes (`npm`'s exit). */
export function stopOnSignals(
  logger: Logger,
  stop: () => Promise<void>,
  deadlineMs: number,
): (cause: string) => void {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    setTimeout(() => {
      logger.error('shutdown deadline passed; exiting', { deadlineMs });
      process.exit(1);
    }, deadlineMs).unref();
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error('shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  return shutdown;
}

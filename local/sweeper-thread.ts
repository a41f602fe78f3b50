/**
 * The sweeper of `npm start` on a worker thread of its own. In AWS the sweeper is a Lambda with its
 * own compute; sharing the gateway's event loop instead, a sweep over thousands of tunnels holds it
 * for tens of milliseconds and every new connection through a tunnel waits. The thread is
 * restarted with backoff when it crashes, and stopped gracefully (terminated past a deadline) with
 * the stack.
 */
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { Backoff, type BackoffSettings } from '../shared/backoff';
import { type Env, envVariables } from '../shared/config';
import type { Logger } from '../shared/logger';
import { type OperatorMetrics, SweepFiguresSchema } from '../shared/metrics/operator-metrics';

/** What the thread starts with; it validates it as any outside input. */
export const SweeperWorkerDataSchema = z.object({
  /** The stack's configuration, for the thread's own `parseEnv`. */
  variables: z.record(z.string(), z.string()),
  /** Where DynamoDB is: DynamoDB Local may have been started by the stack itself. */
  dynamoEndpoint: z.url(),
  /** Signs webhook alerts (`alertWebhookSecret`): `ALERT_WEBHOOK_SECRET` or the one in DATA_DIR. */
  webhookSecret: z.string().min(16),
});
export type SweeperWorkerData = z.infer<typeof SweeperWorkerDataSchema>;

/** Main thread to sweeper thread. */
export const ToSweeperSchema = z.object({ type: z.literal('stop') });
export type ToSweeper = z.infer<typeof ToSweeperSchema>;

/**
 * Sweeper thread to main thread: each log line, which the main thread writes through the stack's
 * logger so the lines land where every other line does (stdout for `npm start`, a test's capture);
 * and what each sweep saw, for the process's metrics (`GET /metrics`).
 */
export const FromSweeperSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('log'), line: z.string() }),
  z.object({ type: z.literal('sweep'), figures: SweepFiguresSchema }),
]);
export type FromSweeper = z.infer<typeof FromSweeperSchema>;

const LogLineSchema = z.looseObject({
  time: z.string(),
  level: z.enum(['debug', 'info', 'warn', 'error']),
  msg: z.string(),
});

export interface RestartSettings extends BackoffSettings {
  /** Crashes in a row (none lasting `healthyAfterMs`) after which the thread is left down. */
  maxCrashes: number;
}

/**
 * From 1 s doubling to 30 s; a thread that swept for a minute counts as healthy again. Ten quick
 * crashes in a row (about three minutes) mean a fault a restart will not fix: say so and stop.
 */
export const RESTART_DEFAULTS: RestartSettings = {
  initialMs: 1_000,
  maxMs: 30_000,
  healthyAfterMs: 60_000,
  maxCrashes: 10,
};

/** How long a graceful stop may take (the running sweep ends first): a few seconds of the 9 s shutdown. */
export const STOP_TIMEOUT_MS = 3_000;

const WORKER_ENTRY = new URL('./sweeper-worker.mjs', import.meta.url);

export interface SweeperThreadOptions {
  env: Env;
  dynamoEndpoint: string;
  webhookSecret: string;
  logger: Logger;
  /** Where each sweep's figures go. */
  metrics?: Pick<OperatorMetrics, 'sweepFinished'>;
  restart?: RestartSettings;
  stopTimeoutMs?: number;
}

export interface SweeperThread {
  /** Asks the thread to stop after its running sweep; terminates it past the deadline. */
  stop(): Promise<void>;
}

export function startSweeperThread(options: SweeperThreadOptions): SweeperThread {
  const { logger } = options;
  const log = logger.child({ component: 'sweeper' });
  const restart = options.restart ?? RESTART_DEFAULTS;
  const stopTimeoutMs = options.stopTimeoutMs ?? STOP_TIMEOUT_MS;
  const workerData: SweeperWorkerData = {
    variables: envVariables(options.env),
    dynamoEndpoint: options.dynamoEndpoint,
    webhookSecret: options.webhookSecret,
  };
  const backoff = new Backoff(restart);
  let crashes = 0;
  let isStopping = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let current: { worker: Worker; exited: Promise<void> } | undefined;

  const relay = (message: unknown) => {
    const parsed = FromSweeperSchema.safeParse(message);
    if (parsed.success && parsed.data.type === 'sweep') {
      options.metrics?.sweepFinished(parsed.data.figures);
      return;
    }
    const line = parsed.success && parsed.data.type === 'log' ? parseLogLine(parsed.data.line) : undefined;
    if (!line) {
      log.warn('sweeper thread sent an unreadable message');
      return;
    }
    // The main logger stamps its own time: the thread's is at most a message hop earlier.
    const { time: _time, level, msg, ...fields } = line;
    logger[level](msg, fields);
  };

  const crashed = (err: unknown, exitCode: number | undefined, upMs: number) => {
    backoff.connectionEnded(upMs);
    crashes = upMs >= restart.healthyAfterMs ? 1 : crashes + 1;
    if (crashes >= restart.maxCrashes) {
      log.error('sweeper thread keeps crashing; statuses and alerts stop until a restart', {
        err,
        exitCode,
        crashes,
      });
      return;
    }
    const restartInMs = backoff.next();
    log.error('sweeper thread crashed; restarting it', { err, exitCode, crashes, restartInMs });
    restartTimer = setTimeout(spawn, restartInMs);
    restartTimer.unref();
  };

  const spawn = () => {
    const startedAt = performance.now();
    let worker: Worker;
    try {
      // The AWS SDK warns once per thread about Node < 22; the main thread has said it already.
      const env = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
      worker = new Worker(WORKER_ENTRY, { workerData, env });
    } catch (err) {
      // Runs from a timer when restarting: a throw here would take the whole stack down.
      crashed(err, undefined, 0);
      return;
    }
    let failure: unknown;
    worker.on('message', relay);
    worker.on('messageerror', (err) => log.warn('sweeper thread message could not be read', { err }));
    worker.on('error', (err) => {
      failure = err;
    });
    const exited = new Promise<void>((resolve) => {
      worker.once('exit', (exitCode) => {
        current = undefined;
        resolve();
        if (isStopping) return;
        // Only a stop ends the thread, so even a clean exit is a crash here.
        const err = failure ?? new Error(`sweeper thread exited with code ${exitCode}`);
        crashed(err, exitCode, performance.now() - startedAt);
      });
    });
    current = { worker, exited };
  };

  spawn();
  return {
    async stop() {
      isStopping = true;
      clearTimeout(restartTimer);
      if (!current) return;
      const { worker, exited } = current;
      worker.postMessage({ type: 'stop' } satisfies ToSweeper);
      let timer: NodeJS.Timeout | undefined;
      const isGraceful = await Promise.race([
        exited.then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), stopTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (isGraceful) return;
      log.warn('sweeper thread did not stop in time; terminating it', { timeoutMs: stopTimeoutMs });
      await worker.terminate();
    },
  };
}

function parseLogLine(line: string): z.infer<typeof LogLineSchema> | undefined {
  try {
    const parsed = LogLineSchema.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

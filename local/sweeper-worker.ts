/**
 * The sweeper thread of `npm start` (started by sweeper-thread.ts, through sweeper-worker.mjs): the
 * sweeper Lambda's composition with DynamoDB clients and a logger of its own, its log lines handed
 * to the main thread, stopped when the main thread asks.
 */
import { type MessagePort, threadId } from 'node:worker_threads';
import { sweepDepsFromEnv } from '../lambda/sweeper/compose';
import { newSweeperId, startSweeperLoop } from '../lambda/sweeper/sweep';
import { parseEnv } from '../shared/config';
import { ConfigError } from '../shared/errors';
import { createLogger } from '../shared/logger';
import type { SweepFigures } from '../shared/metrics/operator-metrics';
import { createDynamoClients } from '../shared/store/dynamo-client';
import { localSecretStore } from './secret-store';
import { type FromSweeper, SweeperWorkerDataSchema, ToSweeperSchema } from './sweeper-thread';

/** Runs the sweeper loop until the main thread posts `stop`; then closes the port so the thread ends. */
export function runSweeperWorker(port: MessagePort, workerData: unknown): void {
  const parsed = SweeperWorkerDataSchema.safeParse(workerData);
  if (!parsed.success) {
    // A ZodError does not survive the trip to the main thread (its message is lost): say it plainly.
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid sweeper thread data: ${issues.join('; ')}`);
  }
  const data = parsed.data;
  const env = parseEnv(data.variables);
  const logger = createLogger(env.LOG_LEVEL, (line) =>
    port.postMessage({ type: 'log', line } satisfies FromSweeper),
  );
  const { client, doc } = createDynamoClients({ region: env.AWS_REGION, endpoint: data.dynamoEndpoint });
  const deps = sweepDepsFromEnv(env, {
    doc,
    logger,
    // The stack's own store: the alert channel key the API creates is read from here.
    secrets: localSecretStore(env),
    webhookSecret: data.webhookSecret,
    // Locally, receivers on loopback and private networks are the norm (as bastions are).
    allowPrivateTargetsByDefault: true,
  });
  const sweeperId = newSweeperId();
  deps.logger.info('sweeper thread started', { threadId, sweeperId, intervalMs: env.SWEEP_INTERVAL_MS });
  const metrics = {
    sweepFinished: (figures: SweepFigures) =>
      port.postMessage({ type: 'sweep', figures } satisfies FromSweeper),
  };
  const loop = startSweeperLoop({ ...deps, sweeperId, intervalMs: env.SWEEP_INTERVAL_MS, metrics });

  const onMessage = (message: unknown) => {
    if (!ToSweeperSchema.safeParse(message).success) {
      deps.logger.warn('sweeper thread ignored an unknown message');
      return;
    }
    port.off('message', onMessage);
    loop.stop().then(
      () => {
        client.destroy();
        deps.logger.info('sweeper thread stopped', { threadId, sweeperId });
        // Nothing else holds the thread: it ends once the port is closed.
        port.close();
      },
      (err: unknown) => {
        deps.logger.error('sweeper thread stop failed', { err });
        port.close();
      },
    );
  };
  port.on('message', onMessage);
}

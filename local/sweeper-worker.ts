/**
 * The sweeper thread of `npm start` (started by sweeper-thread.ts, through sweeper-worker.mjs): the
 * sweeper Lambda's composition with DynamoDB clients and a logger of its own, its log lines handed
 * to the main thread, stopped when the main thread asks.
 */
import { type MessagePort, threadId } from 'node:worker_threads';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { sweepDepsFromEnv } from '../lambda/sweeper/compose';
import { newSweeperId, type SweeperLoop, startSweeperLoop } from '../lambda/sweeper/sweep';
import { parseEnv } from '../shared/config';
import { ConfigError } from '../shared/errors';
import { createLogger } from '../shared/logger';
import type { SweepFigures } from '../shared/metrics/operator-metrics';
import { createDynamoClients } from '../shared/store/dynamo-client';
import { streamArnOf } from '../shared/store/table';
import { changedTunnels } from '../shared/store/table-changes';
import { localSecretStore } from './secret-store';
import { type FromSweeper, SweeperWorkerDataSchema, ToSweeperSchema } from './sweeper-thread';
import { followTableStream } from './table-stream';

/** How soon a write reaches the sweeper: DynamoDB Local's stream is read this often when idle. */
const STREAM_POLL_MS = 250;
/** How long the first full pass waits for the stream to be followed before it runs anyway. */
const LOOP_START_BOUND_MS = 5_000;

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
  // The loop's first full pass starts once the stream is followed (or after a bound, if it cannot
  // be): a write between a full pass's read and the stream's tip would otherwise go unseen until
  // the tunnel's next timer. Until then, what the stream hands on is the full pass's to read.
  let loop: SweeperLoop | undefined;
  let stopping = false;
  const startLoop = () => {
    if (loop || stopping) return;
    loop = startSweeperLoop({ ...deps, sweeperId, intervalMs: env.SWEEP_INTERVAL_MS, metrics });
  };
  const startAnyway = setTimeout(startLoop, LOOP_START_BOUND_MS);
  // The writes of every gateway and of the API, as the sweeper Lambda gets them in AWS.
  const streams = new DynamoDBStreamsClient({
    region: env.AWS_REGION,
    endpoint: data.dynamoEndpoint,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const following = new AbortController();
  const followed = followTableStream({
    client: streams,
    streamArn: () => streamArnOf(client, env.TABLE_NAME),
    onKeys: (keys) => loop?.changed(changedTunnels(keys)),
    onGap: () => loop?.gap(),
    onFollowing: () => {
      clearTimeout(startAnyway);
      startLoop();
    },
    logger,
    pollMs: STREAM_POLL_MS,
    signal: following.signal,
  });

  const onMessage = (message: unknown) => {
    if (!ToSweeperSchema.safeParse(message).success) {
      deps.logger.warn('sweeper thread ignored an unknown message');
      return;
    }
    port.off('message', onMessage);
    stopping = true;
    clearTimeout(startAnyway);
    following.abort();
    Promise.all([loop?.stop(), followed]).then(
      () => {
        client.destroy();
        streams.destroy();
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

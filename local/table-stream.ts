/**
 * `npm start`'s equivalent of the sweeper Lambda's stream trigger: follows the table's stream in
 * DynamoDB Local (every shard, as DynamoDB rolls them over) and hands each batch's keys on. Starts
 * at the stream's tip: what was written before is covered by the full pass the sweeper runs first.
 * After an error (DynamoDB Local restarting, an expired iterator) it starts at the tip again, with
 * backoff, and reports the gap: the caller runs a full pass rather than replay a day of records.
 */
import {
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type Shard,
} from '@aws-sdk/client-dynamodb-streams';
import { Backoff } from '../shared/backoff';
import type { Logger } from '../shared/logger';
import { type ChangedKey, keyOfRecord } from '../shared/store/table-changes';

export interface TableStreamOptions {
  client: DynamoDBStreamsClient;
  /** The stream's ARN (table.ts `streamArnOf`), read again after an error. */
  streamArn: () => Promise<string>;
  onKeys: (keys: ChangedKey[]) => void;
  /** Records may have been missed (after an error): the caller should look at everything again. */
  onGap: () => void;
  /**
   * Called when a look holds an iterator on every shard: every write from then on will be handed
   * on (a full pass that starts after the first call misses nothing between the two).
   */
  onFollowing?: () => void;
  logger: Logger;
  /** Between reads of a shard that had nothing new. */
  pollMs: number;
  signal: AbortSignal;
}

/** Follows the stream until `signal` aborts; resolves then. */
export async function followTableStream(options: TableStreamOptions): Promise<void> {
  const { signal, logger } = options;
  const backoff = new Backoff({ initialMs: 500, maxMs: 10_000, healthyAfterMs: 30_000 });
  const seen = new Set<string>();
  while (!signal.aborted) {
    const started = Date.now();
    try {
      await followShards(options, seen);
    } catch (err) {
      if (signal.aborted) break;
      backoff.connectionEnded(Date.now() - started);
      const delayMs = backoff.next();
      logger.warn('table stream read failed; following it again', { err, delayMs });
      seen.clear();
      options.onGap();
      await sleep(delayMs, signal);
    }
  }
}

/**
 * Reads every open shard until none is left open (then the caller looks again). Shards seen at the
 * first look are read from the tip; later ones (a rolled-over shard's children) from their start.
 */
async function followShards(options: TableStreamOptions, seen: Set<string>): Promise<void> {
  const { client, signal } = options;
  const arn = await options.streamArn();
  const shards = await openShards(client, arn);
  const isFirstLook = seen.size === 0;
  const iterators = await Promise.all(
    shards.map(async (shard) => {
      const id = shard.ShardId ?? '';
      const start = isFirstLook || seen.has(id) ? 'LATEST' : 'TRIM_HORIZON';
      seen.add(id);
      const out = await client.send(
        new GetShardIteratorCommand({ StreamArn: arn, ShardId: id, ShardIteratorType: start }),
      );
      return out.ShardIterator;
    }),
  );
  options.onFollowing?.();
  await Promise.all(iterators.map((iterator) => followShard(options, iterator)));
  if (!signal.aborted && shards.length === 0) await sleep(options.pollMs, signal);
}

async function openShards(client: DynamoDBStreamsClient, arn: string): Promise<Shard[]> {
  const shards: Shard[] = [];
  let after: string | undefined;
  do {
    const out = await client.send(
      new DescribeStreamCommand({ StreamArn: arn, ...(after ? { ExclusiveStartShardId: after } : {}) }),
    );
    shards.push(...(out.StreamDescription?.Shards ?? []));
    after = out.StreamDescription?.LastEvaluatedShardId;
  } while (after);
  return shards.filter((s) => s.ShardId && !s.SequenceNumberRange?.EndingSequenceNumber);
}

async function followShard(options: TableStreamOptions, first: string | undefined): Promise<void> {
  const { client, signal } = options;
  let iterator = first;
  // A closed shard ends with no next iterator; its children are found by the next look.
  while (iterator && !signal.aborted) {
    const out = await client.send(new GetRecordsCommand({ ShardIterator: iterator }));
    const records = out.Records ?? [];
    if (records.length > 0) options.onKeys(records.map((r) => keyOfRecord(r.dynamodb?.Keys)));
    iterator = out.NextShardIterator;
    if (records.length === 0) await sleep(options.pollMs, signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Thousands of reverse tunnels written to (and deleted from) the table in batches: the same items
 * the API's create writes (the store's `tunnelItem`, the `PORT#` claim, the workspace's count), 25
 * to a request instead of a transaction each, so 10,000 take seconds rather than minutes. Only
 * for the bench, which writes them before anything reads them: a batch has no conditions, so the
 * free ports are read first and each taken once.
 */
import { BatchWriteCommand, type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { PortRange } from '../../shared/config';
import { newTunnelId } from '../../shared/ids';
import { batchGetItems } from '../../shared/store/batch-get';
import { tunnelItem } from '../../shared/store/dynamo-tunnel-store';
import { keys } from '../../shared/store/table';
import type { TunnelRecord } from '../../shared/tunnel';

const WRITE_BATCH = 25; // BatchWriteItem's maximum
const MAX_ROUNDS = 10;
const CONCURRENCY = 8;
const SEND_ATTEMPTS = 5;

export type TunnelTemplate = Omit<
  TunnelRecord,
  'id' | 'name' | 'port' | 'version' | 'createdAt' | 'updatedAt'
>;

/**
 * `send`, tried again a few times with growing pauses when it fails: thousands of tunnels that just
 * disconnected keep a busy machine's DynamoDB Local too busy to answer in the client's time.
 */
async function sendPatiently<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (attempt >= SEND_ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1_000 * 2 ** attempt));
    }
  }
}

/** Writes `requests` (puts and deletes) in batches of 25, several at once, retrying what is left. */
async function batchWrite(
  db: DynamoDBDocumentClient,
  tableName: string,
  requests: Record<string, unknown>[],
): Promise<void> {
  const batches: Record<string, unknown>[][] = [];
  for (let i = 0; i < requests.length; i += WRITE_BATCH) batches.push(requests.slice(i, i + WRITE_BATCH));
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < batches.length; i = next++) {
      let pending = batches[i];
      for (let round = 0; pending && pending.length > 0; round++) {
        if (round >= MAX_ROUNDS)
          throw new Error(`DynamoDB left writes unprocessed after ${MAX_ROUNDS} rounds`);
        if (round > 0) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** round));
        const requestItems = { [tableName]: pending };
        const out = await sendPatiently(() => db.send(new BatchWriteCommand({ RequestItems: requestItems })));
        pending = out.UnprocessedItems?.[tableName];
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/** Up to `count` ports of `range` no `PORT#` item claims, in order. */
async function freePorts(
  db: DynamoDBDocumentClient,
  tableName: string,
  range: PortRange,
  count: number,
): Promise<number[]> {
  const free: number[] = [];
  for (let from = range.from; from <= range.to && free.length < count; from += 1_000) {
    const ports = Array.from({ length: Math.min(1_000, range.to - from + 1) }, (_, i) => from + i);
    const taken = new Set(
      (
        await batchGetItems(
          db,
          tableName,
          ports.map((p) => keys.port(p)),
        )
      ).map((item) => String(item.pk)),
    );
    free.push(...ports.filter((p) => !taken.has(keys.port(p).pk)));
  }
  if (free.length < count) {
    throw new Error(`only ${free.length} free ports in ${range.from}-${range.to} for ${count} tunnels`);
  }
  return free.slice(0, count);
}

/** Writes `count` tunnels like `template` (names `<prefix>-<i>`); their ids and ports. */
export async function writeReverseTunnels(
  db: DynamoDBDocumentClient,
  tableName: string,
  range: PortRange,
  count: number,
  template: TunnelTemplate,
  prefix: string,
): Promise<{ id: string; port: number }[]> {
  const [written = []] = await writeReverseTunnelGroups(db, tableName, range, [{ count, template, prefix }]);
  return written;
}

/** A batch of tunnels like `template`, named `<prefix>-<i>`. */
export interface TunnelGroup {
  count: number;
  template: TunnelTemplate;
  prefix: string;
}

/**
 * Writes several groups (of several workspaces, say) at once, the free ports read once for all:
 * each group's ids and ports, in the order given.
 */
export async function writeReverseTunnelGroups(
  db: DynamoDBDocumentClient,
  tableName: string,
  range: PortRange,
  groups: TunnelGroup[],
): Promise<{ id: string; port: number }[][]> {
  const sizes = groups.map((g) => Math.max(0, g.count));
  const total = sizes.reduce((sum, n) => sum + n, 0);
  if (total === 0) return groups.map(() => []);
  const ports = await freePorts(db, tableName, range, total);
  const at = new Date().toISOString();
  let offset = 0;
  const recordsOf = groups.map(({ template, prefix }, g) => {
    const mine = ports.slice(offset, offset + (sizes[g] ?? 0));
    offset += mine.length;
    return mine.map(
      (port, i): TunnelRecord => ({
        ...template,
        id: newTunnelId(),
        name: `${prefix}-${i}`,
        createdAt: at,
        updatedAt: at,
        port,
        version: 1,
      }),
    );
  });
  await batchWrite(
    db,
    tableName,
    recordsOf.flat().flatMap((record) => [
      { PutRequest: { Item: tunnelItem(record) } },
      {
        PutRequest: {
          Item: { ...keys.port(record.port), tunnelId: record.id, workspaceId: record.workspaceId },
        },
      },
    ]),
  );
  const counts = new Map<string, number>();
  for (const [g, { template }] of groups.entries()) {
    counts.set(template.workspaceId, (counts.get(template.workspaceId) ?? 0) + (sizes[g] ?? 0));
  }
  await Promise.all(
    [...counts]
      .filter(([, n]) => n > 0)
      .map(([workspaceId, n]) => changeCount(db, tableName, workspaceId, n)),
  );
  return recordsOf.map((records) => records.map((r) => ({ id: r.id, port: r.port })));
}

/** Deletes what the API's delete deletes of `tunnels` (their events expire by TTL, as there). */
export async function deleteReverseTunnels(
  db: DynamoDBDocumentClient,
  tableName: string,
  workspaceId: string,
  tunnels: { id: string; port: number }[],
): Promise<void> {
  if (tunnels.length === 0) return;
  await batchWrite(
    db,
    tableName,
    tunnels.flatMap((t) =>
      [
        keys.tunnel(t.id),
        keys.tunnelState(t.id),
        keys.tunnelStatus(t.id),
        keys.tunnelSignals(t.id),
        keys.tunnelLease(t.id),
        keys.port(t.port),
      ].map((Key) => ({ DeleteRequest: { Key } })),
    ),
  );
  await changeCount(db, tableName, workspaceId, -tunnels.length);
}

/** The workspace's tunnel count (its quota), kept as the API keeps it. */
async function changeCount(db: DynamoDBDocumentClient, tableName: string, workspaceId: string, by: number) {
  await db.send(
    new UpdateCommand({
      TableName: tableName,
      Key: keys.workspaceUsage(workspaceId),
      UpdateExpression: 'SET tunnelCount = tunnelCount + :by',
      ConditionExpression: 'attribute_exists(tunnelCount)',
      ExpressionAttributeValues: { ':by': by },
    }),
  );
}

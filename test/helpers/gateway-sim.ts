/**
 * Plays the gateway's part against a test table: worker heartbeats, and STATE items either put as
 * given (`state`, `up`, `down`: any item a test needs, in any order) or written through the
 * gateway's own store (`write`: its ordering by connection, and the `lastDown` it keeps).
 */
import { BatchWriteCommand, type DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { TunnelStateItem, WorkerHeartbeat } from '../../shared/gateway-items';
import { newTunnelId } from '../../shared/ids';
import { DynamoGatewayStore } from '../../shared/store/dynamo-gateway-store';
import { tunnelItem } from '../../shared/store/dynamo-tunnel-store';
import { keys, WORKERS_PARTITION } from '../../shared/store/table';
import type { TunnelRecord } from '../../shared/tunnel';

export const T0 = Date.parse('2026-01-03T00:00:00.000Z');
export const iso = (ms: number): string => new Date(ms).toISOString();

export function gatewaySim(db: DynamoDBDocumentClient, tableName: string) {
  const gateway = new DynamoGatewayStore(db, tableName);
  return {
    /** As a worker writes a transition; false when a newer connection already wrote. */
    write(tunnelId: string, item: TunnelStateItem): Promise<boolean> {
      return gateway.writeState(tunnelId, item);
    },
    async state(tunnelId: string, item: TunnelStateItem): Promise<void> {
      await db.send(
        new PutCommand({ TableName: tableName, Item: { ...keys.tunnelState(tunnelId), ...item } }),
      );
    },
    /** `up` through `owner`'s connection `connId`, since `atMs`. */
    async up(tunnelId: string, atMs: number, owner = 'w1', connId = `c-${atMs}`): Promise<void> {
      await this.state(tunnelId, {
        state: 'up',
        since: iso(atMs),
        lastSeenAt: iso(atMs),
        owner,
        connId,
        connectedAt: iso(atMs),
      });
    },
    /** The customer's session `connId` ended at `atMs`. */
    async down(tunnelId: string, atMs: number, owner = 'w1', connId = `c-${atMs}`): Promise<void> {
      await this.state(tunnelId, {
        state: 'down',
        since: iso(atMs),
        lastSeenAt: iso(atMs),
        owner,
        connId,
        error: {
          code: 'customer_not_connected',
          message: 'no customer ssh session holds the reverse tunnel: session ended',
          hint: 'Run reverse.commands.autossh on a host that can reach the service.',
        },
      });
    },
    async beat(workerId: string, lastBeatMs: number, startedMs = T0 - 3_600_000): Promise<void> {
      const beat: WorkerHeartbeat = {
        workerId,
        lastBeatAt: iso(lastBeatMs),
        startedAt: iso(startedMs),
        address: '10.0.9.9',
        version: 'test',
        counts: { reverse: 1, standard: 0 },
      };
      // Listed with the workers as the gateway's store lists it (no TTL: test times are in the past).
      await db.send(
        new PutCommand({
          TableName: tableName,
          Item: { ...keys.worker(workerId), gsi2pk: WORKERS_PARTITION, gsi2sk: workerId, ...beat },
        }),
      );
    },
  };
}

/** A reverse tunnel record, stored straight into the table (no port item: the sweeper needs none). */
export function reverseRecord(workspaceId: string, n: number): TunnelRecord {
  return {
    id: newTunnelId(),
    workspaceId,
    name: `tunnel-${n}`,
    type: 'reverse',
    enabled: true,
    createdAt: iso(T0 - 86_400_000),
    updatedAt: iso(T0 - 86_400_000),
    version: 1,
    port: 20_000 + n,
    service: { host: 'db.internal', port: 5432 },
    publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDY+9r13e3TZdLXjFjGB/VqsT/aJbYWi/3NY9ddIWFTB',
    publicKeyFingerprint: 'SHA256:VDRTPgM4Qk7gQ5YNZcL6vbRbAHR+ZOtmkYiJbVLIDwo',
  };
}

/** Writes many items in BatchWriteItem requests of 25. */
export async function putAll(
  db: DynamoDBDocumentClient,
  tableName: string,
  items: Record<string, unknown>[],
) {
  for (let i = 0; i < items.length; i += 25) {
    let pending = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
    while (pending.length > 0) {
      const out = await db.send(new BatchWriteCommand({ RequestItems: { [tableName]: pending } }));
      pending = (out.UnprocessedItems?.[tableName] ?? []) as typeof pending;
    }
  }
}

export async function storeTunnels(
  db: DynamoDBDocumentClient,
  tableName: string,
  workspaceId: string,
  count: number,
) {
  const records = Array.from({ length: count }, (_, n) => reverseRecord(workspaceId, n));
  await putAll(db, tableName, records.map(tunnelItem));
  return records;
}

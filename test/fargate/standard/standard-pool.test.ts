/**
 * The standard pool's leases on DynamoDB Local, in states the happy path does not reach: a lease
 * this worker holds without serving the tunnel (a claim whose answer was lost, a release that
 * failed, runners stopped while cut off from the table) must not keep the tunnel from everyone.
 */
import { randomBytes } from 'node:crypto';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../../local/free-port';
import { createDynamoClients } from '../../../shared/store/dynamo-client';
import { keys, WORKERS_PARTITION } from '../../../shared/store/table';
import { Cleanups } from '../../helpers/cleanups';
import { startTestStack, type TestStack } from '../../helpers/gateway-stack';
import { createStandard, gatewayItems } from '../../helpers/standard';
import { waitFor } from '../../helpers/wait-for';

const HEARTBEAT_INTERVAL_MS = 500;

describe('standard pool leases', () => {
  let stack: TestStack;
  let dynamo: ReturnType<typeof createDynamoClients>;
  let beating: NodeJS.Timeout | undefined;
  const cleanups = new Cleanups();

  beforeAll(async () => {
    stack = await startTestStack({
      portRange: '28400-28499',
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      env: { POOL_POLL_INTERVAL_MS: '200', RECONNECT_INITIAL_MS: '100', RECONNECT_MAX_MS: '1000' },
    });
    cleanups.add(() => stack.stop());
    dynamo = createDynamoClients({ region: 'us-east-1', endpoint: inject('dynamoEndpoint') });
    cleanups.add(async () => dynamo.client.destroy());
  });

  afterAll(async () => {
    clearInterval(beating);
    await cleanups.runAll();
  });

  /** Another worker that only heartbeats: it halves our fair share and never claims anything. */
  function fakeWorker(): string {
    const workerId = `wk_fake${randomBytes(3).toString('hex')}`;
    const beat = () =>
      dynamo.doc.send(
        new PutCommand({
          TableName: stack.tableName,
          Item: {
            ...keys.worker(workerId),
            gsi2pk: WORKERS_PARTITION,
            gsi2sk: workerId,
            workerId,
            lastBeatAt: new Date().toISOString(),
            startedAt: new Date().toISOString(),
            address: '127.0.0.1',
            version: 'test',
            counts: { reverse: 0, standard: 0 },
          },
        }),
      );
    void beat();
    beating = setInterval(() => void beat().catch(() => {}), HEARTBEAT_INTERVAL_MS / 2);
    return workerId;
  }

  it('gives up a lease it holds but does not serve, so the tunnel is not orphaned', async () => {
    fakeWorker();
    const closed = await freePort();
    const body = {
      ssh: { host: '127.0.0.1', port: closed, user: 'ops' },
      service: { host: '127.0.0.1', port: 5432 },
    };
    const first = await createStandard(stack.api, body);
    const second = await createStandard(stack.api, body);
    const me = stack.gateway.workerId;
    // With two live workers our share of two tunnels is one: we serve one and leave the other.
    const served = await waitFor(
      async () => {
        const items = await gatewayItems(dynamo.doc, stack.tableName, [first.id, second.id]);
        const ours = [...items].filter(([, item]) => item.lease?.owner === me);
        return ours.length === 1 && stack.gateway.standardTunnelCount === 1 ? ours[0]?.[0] : undefined;
      },
      10_000,
      { what: 'one of two tunnels leased to us' },
    );
    const other = served === first.id ? second.id : first.id;

    // Our lease on the other tunnel, as a claim whose answer never arrived would leave it.
    await dynamo.doc.send(
      new PutCommand({
        TableName: stack.tableName,
        Item: { ...keys.tunnelLease(other), owner: me, claimedAt: new Date().toISOString() },
      }),
    );
    await stack.waitForLog(
      (l) => l.msg === 'standard tunnel lease released: held without serving it' && l.tunnelId === other,
      5_000,
    );
    const after = await gatewayItems(dynamo.doc, stack.tableName, [first.id, second.id]);
    expect(after.get(other)?.lease).toBeUndefined();
    expect(after.get(served)?.lease?.owner).toBe(me);
    expect(stack.gateway.standardTunnelCount).toBe(1);
  });
});

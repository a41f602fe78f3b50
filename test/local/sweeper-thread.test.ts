/**
 * The sweeper of `npm start` on a worker thread, on DynamoDB Local: it sweeps off the main thread,
 * its log lines arrive through the caller's logger, it stops gracefully (or is terminated past the
 * deadline), and a thread that crashes is logged with its reason and restarted with backoff, a
 * bounded number of times. Then the same under `npm start` itself: its lines on stdout, an alert
 * signed with the secret the stack keeps, and a prompt SIGTERM.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { ALERT_WEBHOOK_SECRET_FILE } from '../../local/alert-webhook-secret';
import { freePort } from '../../local/free-port';
import {
  type RestartSettings,
  STOP_TIMEOUT_MS,
  type SweeperThread,
  startSweeperThread,
} from '../../local/sweeper-thread';
import { parseEnv } from '../../shared/config';
import { createLogger } from '../../shared/logger';
import { TunnelSchema } from '../../shared/schemas';
import { StatusItemSchema } from '../../shared/status-items';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { keys } from '../../shared/store/table';
import { type AlertReceiver, startAlertReceiver } from '../helpers/alert-receiver';
import { createTestTable } from '../helpers/dynamo';
import { gatewaySim, storeTunnels, T0 } from '../helpers/gateway-sim';
import { apiClient } from '../helpers/http-api';
import { killGroup, type StartedStack, startStack } from '../helpers/local-stack';
import { waitFor } from '../helpers/wait-for';

type Line = Record<string, unknown> & { msg: string; level: string };

const SECRET = 'whsec_sweeper-thread-test-0123456789';
/** A thread loads its modules through tsx before its first sweep: allow for a busy two-core machine. */
const STARTED_WITHIN_MS = 20_000;

describe('sweeper thread', () => {
  let t: Awaited<ReturnType<typeof createTestTable>>;
  let lines: Line[];
  let thread: SweeperThread | undefined;
  const logger = () => createLogger('debug', (line) => lines.push(JSON.parse(line) as Line));
  const env = () => parseEnv({ TABLE_NAME: t.tableName, SWEEP_INTERVAL_MS: '100', LOG_LEVEL: 'debug' });
  const logged = (msg: string, timeoutMs: number) =>
    waitFor(() => lines.find((l) => l.msg === msg), timeoutMs, { intervalMs: 20, what: `log "${msg}"` });

  beforeEach(async () => {
    t = await createTestTable();
    lines = [];
  });
  afterEach(async () => {
    await thread?.stop();
    thread = undefined;
    await t.drop();
  });

  it('sweeps on a thread of its own, records a status and its alert, and stops gracefully', async () => {
    const [tunnel] = await storeTunnels(t.doc, t.tableName, 'ws_1', 1);
    if (!tunnel) throw new Error('no tunnel stored');
    // Down since long before now: the grace has passed, so the first sweep also queues the alert.
    await gatewaySim(t.doc, t.tableName).down(tunnel.id, T0);
    thread = startSweeperThread({
      env: env(),
      dynamoEndpoint: t.endpoint,
      webhookSecret: SECRET,
      logger: logger(),
    });

    const started = await logged('sweeper thread started', STARTED_WITHIN_MS);
    expect(started).toMatchObject({ component: 'sweeper', threadId: expect.any(Number) });
    expect(started.threadId).not.toBe(threadId);
    const changed = await logged('tunnel status changed', 5_000);
    expect(changed).toMatchObject({ component: 'sweeper', tunnelId: tunnel.id, from: 'pending', to: 'down' });
    const alert = await logged('tunnel alert', 5_000);
    expect(alert).toMatchObject({ component: 'sweeper', type: 'tunnel.down', tunnelId: tunnel.id });
    await waitFor(() => lines.filter((l) => l.msg === 'sweep finished').length >= 2, 5_000, {
      what: 'two sweeps',
    });
    const finished = lines.filter((l) => l.msg === 'sweep finished');
    expect(new Set(finished.map((l) => l.sweeperId))).toEqual(new Set([started.sweeperId]));

    const item = await t.doc.send(
      new GetCommand({ TableName: t.tableName, Key: keys.tunnelStatus(tunnel.id) }),
    );
    expect(StatusItemSchema.parse(item.Item)).toMatchObject({ state: 'down' });

    await thread.stop();
    thread = undefined;
    expect(lines.find((l) => l.msg === 'sweeper thread stopped')).toMatchObject({
      sweeperId: started.sweeperId,
    });
    // stop() resolved on the thread's exit, without the terminate a stuck sweep would have needed.
    expect(lines.filter((l) => l.level === 'warn' && l.msg.includes('terminating'))).toEqual([]);
    expect(JSON.stringify(lines)).not.toContain(SECRET);
  });

  it('terminates a thread that has not stopped by the deadline', async () => {
    thread = startSweeperThread({
      env: env(),
      dynamoEndpoint: t.endpoint,
      webhookSecret: SECRET,
      logger: logger(),
      // Still loading its modules when asked: it cannot have stopped within a millisecond.
      stopTimeoutMs: 1,
    });
    await thread.stop();
    thread = undefined;
    expect(lines.map((l) => l.msg)).toContain('sweeper thread did not stop in time; terminating it');
    expect(lines.map((l) => l.msg)).not.toContain('sweeper thread crashed; restarting it');
  });

  it('logs each crash with its reason, restarts with backoff, and leaves a thread that keeps crashing down', async () => {
    const restart: RestartSettings = { initialMs: 50, maxMs: 200, healthyAfterMs: 60_000, maxCrashes: 3 };
    const tooShort = 'whsec_short';
    thread = startSweeperThread({
      env: env(),
      dynamoEndpoint: t.endpoint,
      // The thread refuses it at its boundary and dies at start-up, every time.
      webhookSecret: tooShort,
      logger: logger(),
      restart,
    });
    const gaveUp = await logged(
      'sweeper thread keeps crashing; statuses and alerts stop until a restart',
      60_000,
    );
    const crashes = lines.filter((l) => l.msg === 'sweeper thread crashed; restarting it');
    expect(crashes.map((l) => l.crashes)).toEqual([1, 2]);
    for (const crash of [...crashes, gaveUp]) {
      expect(crash).toMatchObject({ level: 'error', component: 'sweeper', exitCode: 1 });
      expect(crash.err).toMatchObject({ message: expect.stringContaining('webhookSecret') });
    }
    for (const crash of crashes) {
      expect(crash.restartInMs).toBeGreaterThanOrEqual(restart.initialMs / 2);
      expect(crash.restartInMs).toBeLessThanOrEqual(restart.maxMs);
    }
    expect(gaveUp.crashes).toBe(restart.maxCrashes);
    expect(JSON.stringify(lines)).not.toContain(tooShort);
    await thread.stop(); // nothing left to stop: resolves at once
  });
});

describe('the sweeper thread under npm start', () => {
  let dataDir: string;
  let receiver: AlertReceiver;
  let stack: StartedStack | undefined;
  const tableName = `test-${randomBytes(6).toString('hex')}`;
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tk-sweeper-'));
    // The stack generates the signing secret in DATA_DIR (none is configured): read it as it arrives.
    receiver = await startAlertReceiver(() =>
      readFileSync(join(dataDir, ALERT_WEBHOOK_SECRET_FILE), 'utf8').trim(),
    );
  });
  afterAll(async () => {
    if (stack) killGroup(stack.child);
    await receiver.close();
    const { client } = createDynamoClients({ region: 'us-east-1', endpoint: inject('dynamoEndpoint') });
    await client.send(new DeleteTableCommand({ TableName: tableName })).catch(() => {});
    client.destroy();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('records a down tunnel and delivers its signed alert from a worker thread, then stops promptly on SIGTERM', async () => {
    stack = await startStack({
      DATA_DIR: dataDir,
      DYNAMODB_ENDPOINT: inject('dynamoEndpoint'),
      TABLE_NAME: tableName,
      BOOTSTRAP_API_KEY: apiKey,
      ADMIN_TOKEN: `tka_${randomBytes(24).toString('base64url')}`,
      TUNNEL_PORT_RANGE: '32100-32199',
      LOG_LEVEL: 'debug',
      SWEEP_INTERVAL_MS: '300',
      DOWN_GRACE_MS: '0',
      POOL_POLL_INTERVAL_MS: '300',
      RECONNECT_INITIAL_MS: '200',
      RECONNECT_MAX_MS: '1000',
      ALERT_WEBHOOK_URL: receiver.url,
    });
    const started = await stack.waitForLog((l) => l.msg === 'sweeper thread started', STARTED_WITHIN_MS);
    expect(started).toMatchObject({ component: 'sweeper', threadId: expect.any(Number) });
    expect(started.threadId).not.toBe(0); // the main thread's

    // A standard tunnel whose bastion refuses connections: the gateway reports it down at once.
    const running = stack;
    const res = await apiClient(() => running.baseUrl, apiKey).call('POST', '/v1/tunnels', {
      type: 'standard',
      name: 'refused',
      ssh: { host: '127.0.0.1', port: await freePort(), user: 'tunnel' },
      service: { host: '127.0.0.1', port: 5432 },
    });
    expect(res.status).toBe(201);
    const tunnel = TunnelSchema.parse(res.json);

    const changed = await stack.waitForLog(
      (l) => l.msg === 'tunnel status changed' && l.tunnelId === tunnel.id && l.to === 'down',
      20_000,
    );
    expect(changed).toMatchObject({ component: 'sweeper', from: 'pending' });
    const [delivered] = await receiver.waitForDelivered(
      { tunnelId: tunnel.id, type: 'tunnel.down' },
      1,
      10_000,
    );
    expect(delivered?.isSignatureValid).toBe(true);
    const sweeps = stack.lines.filter((l) => l.msg === 'sweep finished');
    expect(sweeps.length).toBeGreaterThan(0);
    for (const sweep of sweeps)
      expect(sweep).toMatchObject({ component: 'sweeper', sweeperId: started.sweeperId });

    const { ms, stopped } = await stack.stop('SIGTERM', 'npm');
    expect(stopped).toBe(true);
    expect(ms).toBeLessThan(10_000);
    const shutdown = stack.lines.find((l) => l.msg === 'shutting down');
    const threadStopped = stack.lines.find((l) => l.msg === 'sweeper thread stopped');
    expect(threadStopped).toMatchObject({ component: 'sweeper', sweeperId: started.sweeperId });
    expect(Date.parse(String(threadStopped?.time)) - Date.parse(String(shutdown?.time))).toBeLessThan(
      STOP_TIMEOUT_MS,
    );
    expect(stack.lines.filter((l) => String(l.msg).includes('terminating'))).toEqual([]);
    const secret = readFileSync(join(dataDir, ALERT_WEBHOOK_SECRET_FILE), 'utf8').trim();
    expect(stack.output.join('\n')).not.toContain(secret);
  });
});

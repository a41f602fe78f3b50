/**
 * Standard tunnels across gateway processes (issue 4, acceptance 5): separate `node --import tsx
 * local/main.ts` processes on the run's DynamoDB Local, one table and one DATA_DIR (so one secret
 * store). Twenty tunnels are split between two workers, each owned by exactly one (LEASE and STATE
 * items agree); a SIGKILLed worker's tunnels are up on the survivor within the lease time; a
 * SIGTERMed worker hands its tunnels over faster and without a gap: it offers its leases, the other
 * takes them at once and the stopping one serves until the other is up (no connection fails meanwhile).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDynamoClients } from '../../../shared/store/dynamo-client';
import { Bastion } from '../../helpers/bastion';
import { startConnectionLoop } from '../../helpers/connection-loop';
import { requireTools } from '../../helpers/customer';
import { type EchoServer, echoProbe, startEchoServer } from '../../helpers/echo';
import { apiClient } from '../../helpers/http-api';
import { killGroup, type StartedStack, startStack } from '../../helpers/local-stack';
import { migrateQueuedConnections } from '../../helpers/migrate-req';
import { createStandard, gatewayItems } from '../../helpers/standard';
import { waitFor } from '../../helpers/wait-for';

const TUNNELS = 20;
// A live worker counts as gone after 2 beats and a margin (shared/liveness.ts): at 500 ms a busy CI
// machine delayed one worker's beat past that, the other took its leases, and the port was still
// bound by the live owner. 1 s keeps a false takeover out of reach while the lease stays short.
const HEARTBEAT_INTERVAL_MS = 1_000;
const POOL_POLL_INTERVAL_MS = 300;
/** A lease is valid while its owner's heartbeat is younger than this. */
const LEASE_TTL_MS = 3 * HEARTBEAT_INTERVAL_MS;
/** Margin for an SSH login per tunnel, the state write and the API read, on a busy 2-core machine. */
const CONNECT_MARGIN_MS = 3_000;

interface Worker {
  stack: StartedStack;
  workerId: string;
}

describe('standard tunnels shared by gateway processes', () => {
  const endpoint = inject('dynamoEndpoint');
  const tableName = `test-${randomBytes(6).toString('hex')}`;
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;
  const dynamo = createDynamoClients({ region: 'us-east-1', endpoint });
  let dataDir: string;
  let bastion: Bastion;
  let echo: EchoServer;
  const workers: Worker[] = [];
  const ids: string[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];

  async function startWorker(): Promise<Worker> {
    const stack = await startStack(
      {
        DYNAMODB_ENDPOINT: endpoint,
        TABLE_NAME: tableName,
        DATA_DIR: dataDir,
        PORT: '0',
        SSH_PORT: '0',
        BOOTSTRAP_API_KEY: apiKey,
        ADMIN_TOKEN: `tka_${randomBytes(24).toString('base64url')}`,
        TUNNEL_PORT_RANGE: '29000-29999',
        HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_INTERVAL_MS),
        POOL_POLL_INTERVAL_MS: String(POOL_POLL_INTERVAL_MS),
        // The handover cell reads the history: the sweepers record each takeover within a second, so
        // what the SIGKILL cell did is in it long before (not later, with a time after the SIGTERM).
        SWEEP_INTERVAL_MS: '1000',
        RECONNECT_INITIAL_MS: '100',
        RECONNECT_MAX_MS: '1000',
        ALLOW_PRIVATE_SSH_HOSTS: 'true',
        LOG_LEVEL: 'info',
      },
      60_000,
      'node',
    );
    cleanups.push(async () => killGroup(stack.child));
    const listening = await stack.waitForLog((l) => l.msg === 'ssh endpoint listening', 5_000);
    const worker = { stack, workerId: String(listening.workerId) };
    workers.push(worker);
    return worker;
  }

  const api = (worker: Worker, method: string, path: string, body?: unknown) =>
    apiClient(() => worker.stack.baseUrl, apiKey).call(method, path, body);

  /**
   * Who holds each tunnel: its LEASE and STATE items must name the same worker and say up, and the
   * API (asked through `via`) must show it up. Returns tunnel ids by owner, or why not yet.
   */
  async function owners(via: Worker): Promise<Map<string, string[]> | string> {
    const items = await gatewayItems(dynamo.doc, tableName, ids);
    const byOwner = new Map<string, string[]>();
    for (const [id, { state, lease }] of items) {
      if (!lease) return `${id} has no lease`;
      if (!state) return `${id} has no state`;
      if (state.state !== 'up') return `${id} is ${state.state}: ${state.error?.code}`;
      if (state.owner !== lease.owner) return `${id} leased to ${lease.owner} but served by ${state.owner}`;
      byOwner.set(lease.owner, [...(byOwner.get(lease.owner) ?? []), id]);
    }
    const listed = await api(via, 'GET', '/v1/tunnels?limit=100');
    if (listed.status !== 200) return `list answered ${listed.status}`;
    const notUp = (listed.json.items as { id: string; status: { state: string; error?: { code: string } } }[])
      .filter((t) => t.status.state !== 'up')
      .map((t) => `${t.id} ${t.status.state} ${t.status.error?.code ?? ''}`);
    if (notUp.length > 0) return `API shows ${notUp.join(', ')}`;
    return byOwner;
  }

  /** Waits until the tunnels are held exactly as `expected` says (worker id → count). */
  async function waitForSplit(via: Worker, expected: Map<string, number>, timeoutMs: number) {
    return waitFor(
      async () => {
        const result = await owners(via);
        if (typeof result === 'string') throw new Error(result);
        const counts = [...result].map(([owner, held]) => [owner, held.length] as const);
        if (counts.length !== expected.size || counts.some(([owner, n]) => expected.get(owner) !== n)) {
          throw new Error(`split is ${JSON.stringify(counts)}`);
        }
        return result;
      },
      timeoutMs,
      { intervalMs: 50, what: `split ${JSON.stringify([...expected])}` },
    );
  }

  /** Every tunnel carries a connection to the echo service through its `connect`. */
  async function expectAllCarry(via: Worker): Promise<void> {
    const listed = await api(via, 'GET', '/v1/tunnels?limit=100');
    const connects = (listed.json.items as { connect: { host: string; port: number } | null }[]).map(
      (t) => t.connect,
    );
    expect(connects.every((c) => c !== null)).toBe(true);
    const probes = await Promise.all(connects.map((c) => echoProbe(c?.host ?? '', c?.port ?? 0, 10_000)));
    expect(probes.filter((ok) => !ok)).toHaveLength(0);
  }

  beforeAll(async () => {
    requireTools('ssh-keygen', 'pkill', 'pgrep', 'useradd', 'userdel');
    dataDir = await mkdtemp(join(tmpdir(), 'tk-failover-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    cleanups.push(async () => {
      await dynamo.client.send(new DeleteTableCommand({ TableName: tableName })).catch(() => {});
      dynamo.client.destroy();
    });
    bastion = await Bastion.start();
    cleanups.push(() => bastion.dispose());
    // What the stopping worker's listeners still queue moves to the other's (the handover cell).
    cleanups.push(await migrateQueuedConnections());
    echo = await startEchoServer();
    cleanups.push(() => echo.close());
  });

  afterAll(async () => {
    // Processes first (by process group), then what they used.
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  it('splits 20 tunnels between two workers, each owned by exactly one', async () => {
    // One at a time: the first creates the table, and both must not race to make the host key.
    const a = await startWorker();
    const b = await startWorker();
    expect(a.workerId).not.toBe(b.workerId);

    // Through both APIs at once, as clients would.
    const created = await Promise.all(
      Array.from({ length: TUNNELS }, (_, i) =>
        createStandard((method, path, body) => api(i % 2 ? b : a, method, path, body), {
          ssh: { host: '127.0.0.1', port: bastion.port, user: bastion.user },
          service: { host: '127.0.0.1', port: echo.port },
        }),
      ),
    );
    ids.push(...created.map((t) => t.id));
    await bastion.setAuthorizedKeys(created.map((t) => t.authorizedKeysLine));

    const split = await waitForSplit(
      a,
      new Map([
        [a.workerId, TUNNELS / 2],
        [b.workerId, TUNNELS / 2],
      ]),
      30_000,
    );
    // Each tunnel's listener is bound by its owner alone: no worker failed to bind a port, and no
    // worker took a lease from a live one (the takeovers are printed to say why when it did).
    for (const { stack } of workers) {
      const relevant = stack.lines.filter(
        (l) =>
          l.msg === 'standard tunnel not started: its port is unavailable on this worker' ||
          (l.msg === 'standard tunnel claimed' && l.takenFrom !== undefined),
      );
      expect(relevant).toEqual([]);
    }
    // Claims in the logs agree: every tunnel was last claimed by the worker that holds it.
    for (const [owner, held] of split) {
      const worker = workers.find((w) => w.workerId === owner);
      for (const id of held) {
        expect(
          worker?.stack.lines.some((l) => l.msg === 'standard tunnel claimed' && l.tunnelId === id),
        ).toBe(true);
      }
    }
    await expectAllCarry(b);
  }, 90_000);

  let sigkillMs = 0;

  it('a SIGKILLed worker loses all its tunnels to the other within the lease time', async () => {
    const [a, b] = workers;
    if (!a || !b) throw new Error('workers missing');
    const killedAt = Date.now();
    process.kill(-(b.stack.child.pid ?? 0), 'SIGKILL');
    await waitForSplit(
      a,
      new Map([[a.workerId, TUNNELS]]),
      LEASE_TTL_MS + POOL_POLL_INTERVAL_MS + CONNECT_MARGIN_MS,
    );
    sigkillMs = Date.now() - killedAt;
    await expectAllCarry(a);
    const takenOver = a.stack.lines.filter(
      (l) =>
        l.msg === 'standard tunnel claimed' &&
        l.takenFrom === b.workerId &&
        Date.parse(String(l.time)) >= killedAt,
    );
    expect(takenOver).toHaveLength(TUNNELS / 2);
    console.info(
      `figure: SIGKILL failover: all ${TUNNELS} tunnels up on the survivor ${sigkillMs} ms after the kill ` +
        `(lease ${LEASE_TTL_MS} ms, poll ${POOL_POLL_INTERVAL_MS} ms)`,
    );
  });

  it('a SIGTERMed worker hands its tunnels over at once, with no failed connection and no down', async () => {
    const [a] = workers;
    if (!a) throw new Error('worker missing');
    const c = await startWorker();
    // The newcomer takes its fair share: the survivor hands half over.
    await waitForSplit(
      c,
      new Map([
        [a.workerId, TUNNELS / 2],
        [c.workerId, TUNNELS / 2],
      ]),
      15_000,
    );

    // New connections through every tunnel, one every 10 ms in turn, across the handover.
    const listed = await api(c, 'GET', '/v1/tunnels?limit=100');
    const ports = (listed.json.items as { connect: { port: number } | null }[]).map(
      (t) => t.connect?.port ?? 0,
    );
    const loops = ports.map((port) =>
      startConnectionLoop('127.0.0.1', port, { intervalMs: 10 * ports.length, maxDurationMs: 30_000 }),
    );
    await waitFor(() => loops.every((l) => l.attempts().length > 0), 5_000, { what: 'the loops running' });
    const termAt = Date.now();
    const stopping = a.stack.stop('SIGTERM');
    await waitForSplit(
      c,
      new Map([[c.workerId, TUNNELS]]),
      LEASE_TTL_MS + POOL_POLL_INTERVAL_MS + CONNECT_MARGIN_MS,
    );
    const sigtermMs = Date.now() - termAt;
    const stopped = await stopping;
    expect(stopped.stopped).toBe(true);
    const attempts = (await Promise.all(loops.map((l) => l.stop()))).flat();
    expect(attempts.filter((x) => !x.ok)).toEqual([]);
    // Handed over, not taken over: the stopping worker offered its leases and served on until the
    // other was up with each, so the other claimed them at once instead of waiting for stale ones.
    const handedOver = a.stack.lines.filter(
      (l) => l.msg === 'standard tunnel handed over' && Date.parse(String(l.time)) >= termAt,
    );
    expect(handedOver).toHaveLength(TUNNELS / 2);
    const claims = c.stack.lines.filter(
      (l) => l.msg === 'standard tunnel claimed' && Date.parse(String(l.time)) >= termAt,
    );
    expect(claims).toHaveLength(TUNNELS / 2);
    expect(claims.every((l) => l.takenFrom === a.workerId && l.handedOver === true)).toBe(true);
    // And the history shows nothing: no down, not even a restart.
    for (const id of ids) {
      const events = await api(c, 'GET', `/v1/tunnels/${id}/events`);
      const downs = (events.json.items as { to: string; at: string }[]).filter(
        (e) => e.to === 'down' && Date.parse(e.at) >= termAt,
      );
      expect(downs, id).toEqual([]);
    }
    await expectAllCarry(c);
    console.info(
      `figure: SIGTERM handover: all ${TUNNELS} tunnels up on the other worker ${sigtermMs} ms after the signal, ` +
        `${attempts.length} new connections meanwhile, 0 failed ` +
        `(SIGKILL took ${sigkillMs} ms; the worker stopped in ${stopped.ms} ms)`,
    );
  }, 60_000);
});

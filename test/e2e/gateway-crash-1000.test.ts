/**
 * A gateway process killed with SIGKILL while holding 1,000 reverse tunnels (issue 18, acceptance 3).
 *
 * B is `npm start` (API, sweeper and a gateway of its own); A is `npm run gateway` beside it on the
 * same table and DATA_DIR (so the same SSH host key) and holds every customer session. The
 * customers are the bench's ssh2 process (bench/support/tunnel-clients.ts): 1,000 ssh2 Clients in
 * one child process, each logging in with its tunnel's key and holding one `tcpip-forward`, as
 * `ssh -N -R` does; like plain ssh they never reconnect, so the outcome is deterministic. A dies
 * without a word: its STATE items still say `up`; only its heartbeat going stale tells. Everything
 * is judged from outside, through the API's listings and the alert receiver; B's log serves only
 * to know that its sweeper has looked again after the pages (so "nothing more" is not a guess).
 *
 * The tunnels are spread over 10 workspaces of 100 (the default quota; each workspace has its own
 * API rate limit, so all are listed at once). Each workspace's first tunnel is created through the
 * API, the other 99 written as the API's create writes them (bench/support/bulk-tunnels.ts): 1,000
 * creates through the API took 80 s on a busy 2-core machine.
 *
 * Clocks: 3 s heartbeats, 4 s keepalives and a 2 s sweep, not the 1 s ones of the 10-tunnel test.
 * DynamoDB Local serializes writes (4-14 ms each here), and 1,000 logins bring 2,000 transactions
 * (A's STATE, the sweeper's transition) on top of the periodic reads: heartbeat items were measured
 * landing up to 6.6 s after they were stamped, so with 1 s heartbeats (stale after 3 s) the live A
 * was recorded lost and paged hundreds of times before it was killed. Here a heartbeat goes stale
 * after 9 s (shared/liveness.ts); the tunnels then show `worker_lost` until the reconnect window
 * (3 keepalives and a heartbeat, 15 s from the last heartbeat) ends and the cause becomes the
 * customer's absence: a 6 s stretch, long enough for a listing of 1,000 tunnels to catch. The
 * contract's bound and the grace follow from the clocks.
 *
 * TUNNEL_PORT_RANGE is 4000-4999, below the kernel's ephemeral range (32768+), where no test's
 * tunnels live: every port of it is taken, and an OS-assigned port (each gateway's control endpoint
 * listens on the tunnels' address at one) must never hold one.
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeReverseTunnelGroups } from '../../bench/support/bulk-tunnels';
import { Cleanup } from '../../bench/support/cleanup';
import { openFilesLimit } from '../../bench/support/procfs';
import { TunnelClients } from '../../bench/support/tunnel-clients';
import type { ForwardSession } from '../../bench/support/tunnel-clients-protocol';
import { DEFAULT_WORKSPACE_ID } from '../../local/stack';
import { parsePublicKey } from '../../shared/keys';
import { workerGoneAfterMs } from '../../shared/liveness';
import { type Tunnel, TunnelSchema } from '../../shared/schemas';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { type AlertReceiver, type ReceivedRequest, startAlertReceiver } from '../helpers/alert-receiver';
import { type AlertClocks, alertTimingEnv, downBoundMs } from '../helpers/alert-timing';
import { requireTools, sshKeygen } from '../helpers/customer';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { apiClient } from '../helpers/http-api';
import { disposeStacks, killStack, type StartedStack, startStack } from '../helpers/local-stack';
import { waitForSweepBegunAfter } from '../helpers/sweeps';
import { waitFor } from '../helpers/wait-for';

const TUNNELS = 1_000;
const WORKSPACES = 10;
const PER_WORKSPACE = TUNNELS / WORKSPACES;
const CLOCKS: AlertClocks = { keepaliveMs: 4_000, heartbeatMs: 3_000, sweepMs: 2_000 };
/** CONTRACT.md, Status: down within SSH_KEEPALIVE_INTERVAL_MS × 3 + HEARTBEAT_INTERVAL_MS (15 s here). */
const DOWN_BOUND_MS = downBoundMs(CLOCKS);
/** A heartbeat counts as stale after this (9 s here): the loss shows between it and the bound. */
const STALE_AFTER_MS = workerGoneAfterMs({
  heartbeatIntervalMs: CLOCKS.heartbeatMs,
  keepaliveIntervalMs: CLOCKS.keepaliveMs,
});
/** Longer than the staleness, as in the 10-tunnel test: the grace is not over before the loss shows. */
const GRACE_MS = STALE_AFTER_MS + 1_000;
/** Every port taken by a tunnel: see the header. */
const PORT_RANGE = { from: 4_000, to: 4_999 };
/** A's 1,000 sessions and listeners, B's 1,000 relay listeners, and room for the rest. */
const OPEN_FILES = 8_192;
/** How many ids a failure message names. */
const SHOWN = 5;

const run = promisify(execFile);

interface Workspace {
  id: string;
  api: ReturnType<typeof apiClient>;
}

/** How many, and the first few, for failure messages. */
const some = (items: readonly string[]) =>
  `${items.length} (first: ${items.slice(0, SHOWN).join('; ') || 'none'})`;

/** One alert request, short, for failure messages. */
const brief = (r: ReceivedRequest) =>
  `${r.alert?.type ?? 'unparsed'} ${r.alert?.tunnel.id ?? r.alertId ?? ''} (${r.answered})`;

describe('a gateway killed with SIGKILL while holding 1,000 reverse tunnels', () => {
  const endpoint = inject('dynamoEndpoint');
  const tableName = `test-${randomBytes(6).toString('hex')}`;
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;
  const adminToken = `tka_${randomBytes(24).toString('base64url')}`;
  const secret = `whsec_${randomBytes(24).toString('base64url')}`;
  const db = createDynamoClients({ region: 'us-east-1', endpoint });
  const stacks: StartedStack[] = [];
  const cleanup = new Cleanup();
  let dataDir: string | undefined;
  let receiver: AlertReceiver | undefined;
  let echo: EchoServer | undefined;
  let a: StartedStack | undefined;
  let b: StartedStack | undefined;
  let clients: TunnelClients | undefined;

  beforeAll(async () => {
    requireTools('ssh-keygen', 'prlimit');
    dataDir = await mkdtemp(join(tmpdir(), 'tk-crash1000-'));
    receiver = await startAlertReceiver(() => secret);
    echo = await startEchoServer();
    const openFiles = await openFilesLimit(OPEN_FILES);
    const env = {
      DATA_DIR: dataDir,
      DYNAMODB_ENDPOINT: endpoint,
      TABLE_NAME: tableName,
      BOOTSTRAP_API_KEY: apiKey,
      ADMIN_TOKEN: adminToken,
      TUNNEL_PORT_RANGE: `${PORT_RANGE.from}-${PORT_RANGE.to}`,
      ...alertTimingEnv(GRACE_MS, CLOCKS),
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_WEBHOOK_SECRET: secret,
    };
    // B first: it writes DATA_DIR's host key and control token, which A reads. B logs at debug
    // level for all its `sweep finished` lines (a sweep with nothing to do logs at debug).
    b = await startStack({ ...env, LOG_LEVEL: 'debug' }, 30_000, 'node');
    stacks.push(b);
    // Both at once, each kept for clean-up even when the other fails.
    const [startedA, startedClients] = await Promise.allSettled([
      startStack(env, 30_000, 'node', 'gateway'),
      TunnelClients.start(cleanup, openFiles),
    ]);
    if (startedA.status === 'fulfilled') stacks.push(startedA.value);
    if (startedA.status === 'rejected') throw startedA.reason;
    if (startedClients.status === 'rejected') throw startedClients.reason;
    a = startedA.value;
    clients = startedClients.value;
    for (const stack of [a, b]) {
      await run('prlimit', ['--pid', String(stack.child.pid), `--nofile=${openFiles}:${openFiles}`]);
    }
  }, 90_000);

  afterAll(async () => {
    try {
      await cleanup.runAll((line) => process.stderr.write(`${line}\n`));
    } finally {
      await disposeStacks(stacks);
      await db.client.send(new DeleteTableCommand({ TableName: tableName })).catch(() => {});
      db.client.destroy();
      await Promise.all([receiver?.close(), echo?.close()]);
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('shows all 1,000 down (worker_lost) within the bound and pages each exactly once after the grace', async () => {
    if (!a || !b || !clients || !receiver || !echo) throw new Error('beforeAll did not finish');
    const stackB = b;
    const alerts = receiver;
    const phases: string[] = [];
    let phaseStarted = Date.now();
    const phase = (what: string) => {
      phases.push(`${what} ${((Date.now() - phaseStarted) / 1000).toFixed(1)} s`);
      phaseStarted = Date.now();
    };
    const ready = await a.waitForLog((l) => l.msg === 'gateway ready', 1_000);
    const workerA = String(ready.workerId);
    const sshPortA = Number(ready.sshPort);

    // Ten workspaces: the default one (`npm start` bootstraps it) and nine more, each with its key.
    const workspaces: Workspace[] = [
      { id: DEFAULT_WORKSPACE_ID, api: apiClient(() => stackB.baseUrl, apiKey) },
    ];
    const admin = apiClient(() => stackB.baseUrl, adminToken);
    const more = await Promise.all(
      Array.from({ length: WORKSPACES - 1 }, (_, i) =>
        admin.call('POST', '/v1/admin/workspaces', { name: `crash-${i + 1}` }),
      ),
    );
    for (const res of more) {
      expect(res.status, JSON.stringify(res.json)).toBe(201);
      const key = String(res.json.apiKey);
      workspaces.push({ id: String(res.json.id), api: apiClient(() => stackB.baseUrl, key) });
    }

    // One key for every tunnel: what the customers cost is not what is tested.
    const customerKey = await sshKeygen('ed25519');
    const service = { host: '127.0.0.1', port: echo.port };
    const firsts = await Promise.all(
      workspaces.map((ws, w) => ws.api.createReverse(`crash-${w}`, service, customerKey.publicKey)),
    );
    const key = parsePublicKey(customerKey.publicKey, 'publicKey');
    await writeReverseTunnelGroups(
      db.doc,
      tableName,
      PORT_RANGE,
      workspaces.map((ws, w) => ({
        count: PER_WORKSPACE - 1,
        prefix: `crash-${w}`,
        template: {
          workspaceId: ws.id,
          type: 'reverse',
          enabled: true,
          service,
          publicKey: key.publicKey,
          publicKeyFingerprint: key.fingerprint,
        },
      })),
    );
    phase('set-up and 1,000 tunnels');

    /** Every tunnel of a workspace, page by page (100 a page), a 429 waited out. */
    const listAll = async (ws: Workspace): Promise<Tunnel[]> => {
      const items: Tunnel[] = [];
      let cursor: string | undefined;
      for (let call = 0; call < 20; call++) {
        const query = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
        const res = await ws.api.call('GET', `/v1/tunnels?limit=100${query}`);
        if (res.status === 429) {
          await new Promise((r) => setTimeout(r, 1_000 * Number(res.headers.get('retry-after') ?? 1)));
          continue;
        }
        if (res.status !== 200) throw new Error(`GET /v1/tunnels: ${res.status} ${JSON.stringify(res.json)}`);
        items.push(...TunnelSchema.array().parse(res.json.items));
        cursor = typeof res.json.nextCursor === 'string' ? res.json.nextCursor : undefined;
        if (!cursor) return items;
      }
      throw new Error('GET /v1/tunnels: no last page within 20 calls');
    };
    /** The workspaces listed at once (all by default): each tunnel, and when its answer arrived. */
    const listEverything = async (which: readonly Workspace[] = workspaces) => {
      const listed = new Map<string, { tunnel: Tunnel; at: number }>();
      await Promise.all(
        which.map(async (ws) => {
          const items = await listAll(ws);
          const at = Date.now();
          for (const tunnel of items) listed.set(tunnel.id, { tunnel, at });
        }),
      );
      return listed;
    };

    // Every tunnel as the API shows it: pending (never connected), each on a port of its own.
    const byId = new Map<string, Tunnel>();
    const workspaceOf = new Map<string, string>();
    await Promise.all(
      workspaces.map(async (ws) => {
        for (const tunnel of await listAll(ws)) {
          byId.set(tunnel.id, tunnel);
          workspaceOf.set(tunnel.id, ws.id);
        }
      }),
    );
    expect(byId.size).toBe(TUNNELS);
    const notPending = [...byId.values()].filter((t) => t.status.state !== 'pending').map((t) => t.id);
    expect(notPending, `not pending before any login: ${some(notPending)}`).toEqual([]);
    expect(new Set([...byId.values()].map((t) => t.reverse?.remotePort)).size).toBe(TUNNELS);

    // The customers log in to A, each as its tunnel, and ask for its port.
    const hostKey = firsts[0]?.reverse?.knownHostsLine.split(' ')[2];
    if (!hostKey) throw new Error('the API gave no known_hosts line');
    const sessions: ForwardSession[] = [...byId.values()].map((t) => {
      if (!t.reverse) throw new Error(`tunnel ${t.id} has no reverse block`);
      return { username: t.reverse.sshUser, bindAddr: 'localhost', bindPort: t.reverse.remotePort };
    });
    const opened = await clients.open(
      'crash',
      { host: '127.0.0.1', port: sshPortA, hostKey, privateKey: customerKey.privateKey },
      sessions,
      { concurrency: 16, timeoutMs: 30_000, deadlineMs: 180_000 },
    );
    expect(opened.failed, `logins that got no forward: ${opened.errors.join('; ')}`).toBe(0);
    phase('1,000 logins to A');

    // All 1,000 up through the API, reachable on their ports.
    let notUp: string[] = [];
    await waitFor(
      async () => {
        const listed = await listEverything();
        notUp = [...byId.values()]
          .filter((t) => {
            const seen = listed.get(t.id)?.tunnel;
            return !(seen?.status.state === 'up' && seen.connect?.port === t.reverse?.remotePort);
          })
          .map((t) => t.id);
        return notUp.length === 0;
      },
      60_000,
      { what: `all ${TUNNELS} tunnels up`, intervalMs: 200 },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; not up: ${some(notUp)}`);
    });
    phase('all up');
    // A live gateway pages nothing, and coming up from `pending` pages nothing either.
    expect(alerts.requests.map(brief), `alerts before the kill: ${some(alerts.requests.map(brief))}`).toEqual(
      [],
    );

    // SIGKILL: no state written, no listener closed politely; the kernel drops A's connections.
    const killedAt = await killStack(a, 'A');

    // Each tunnel counts as shown down when the answer that first said so arrived (polling time
    // included, so the bound is never flattered), and is judged by that answer: later ones may
    // already be past the reconnect window, where the cause becomes the customer's absence.
    // A workspace whose tunnels have all been shown down is not listed again until the end.
    const firstDown = new Map<string, { tunnel: Tunnel; at: number }>();
    const stillUp = () => [...byId.keys()].filter((id) => !firstDown.has(id));
    await waitFor(
      async () => {
        const pending = new Set(stillUp().map((id) => workspaceOf.get(id)));
        const listed = await listEverything(workspaces.filter((ws) => pending.has(ws.id)));
        for (const [id, seen] of listed) {
          if (seen.tunnel.status.state === 'down' && !firstDown.has(id)) firstDown.set(id, seen);
        }
        return stillUp().length === 0;
      },
      DOWN_BOUND_MS + 30_000,
      { what: `all ${TUNNELS} tunnels down`, intervalMs: 250 },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; never shown down: ${some(stillUp())}`);
    });
    phase('all down');
    const downMs = [...firstDown].map(([id, { at }]) => ({ id, ms: at - killedAt }));
    const late = downMs.filter((d) => d.ms > DOWN_BOUND_MS).map((d) => `${d.id} after ${d.ms} ms`);
    expect(late, `shown down later than ${DOWN_BOUND_MS} ms after the kill: ${some(late)}`).toEqual([]);
    const last = await listEverything();
    const upAgain = [...byId.keys()].filter((id) => last.get(id)?.tunnel.status.state !== 'down');
    expect(upAgain, `no longer down in the last listing: ${some(upAgain)}`).toEqual([]);
    const wrong = [...firstDown]
      .filter(([, { tunnel }]) => {
        const error = tunnel.status.error;
        // The loss dates from A's last heartbeat, at or before the kill.
        return !(
          tunnel.connect === null &&
          error?.code === 'worker_lost' &&
          error.message.includes(workerA) &&
          Date.parse(tunnel.status.since) <= killedAt
        );
      })
      .map(([id, { tunnel }]) => `${id} ${JSON.stringify(tunnel.status)}`);
    expect(wrong, `down without worker_lost of ${workerA} since before the kill: ${some(wrong)}`).toEqual([]);
    const since = new Map([...firstDown].map(([id, { tunnel }]) => [id, Date.parse(tunnel.status.since)]));

    // One tunnel.down per tunnel, after the grace, sent by B's sweeper (A was a gateway only).
    const paged = () => new Set(alerts.delivered({ type: 'tunnel.down' }).map((d) => d.alert?.tunnel.id));
    await waitFor(() => paged().size >= TUNNELS, GRACE_MS + 120_000, {
      what: `${TUNNELS} × tunnel.down`,
      intervalMs: 100,
    }).catch((err: unknown) => {
      const got = paged();
      const missing = [...byId.keys()].filter((id) => !got.has(id));
      throw new Error(`${(err as Error).message}; no tunnel.down for ${some(missing)}`);
    });
    phase('all paged');
    // A whole sweep of B's began after the last page: whatever it would send again (or send for
    // no reason) is in by now.
    const lastPageAt = Math.max(...alerts.requests.map((r) => r.at));
    await waitForSweepBegunAfter(stackB.lines, lastPageAt, 60_000);
    phase('a whole sweep after the last page');

    const requests = alerts.requests;
    const refused = requests.filter((r) => r.answered !== 200).map(brief);
    expect(refused, `alert requests not signed or not the contract's shape: ${some(refused)}`).toEqual([]);
    const others = requests.filter((r) => r.alert?.type !== 'tunnel.down').map(brief);
    expect(others, `alerts other than tunnel.down: ${some(others)}`).toEqual([]);
    const perTunnel = new Map<string, number>();
    for (const r of requests) {
      const id = r.alert?.tunnel.id ?? '';
      perTunnel.set(id, (perTunnel.get(id) ?? 0) + 1);
    }
    const twice = [...perTunnel].filter(([, n]) => n > 1).map(([id, n]) => `${id} ×${n}`);
    expect(twice, `tunnels paged more than once: ${some(twice)}`).toEqual([]);
    const strangers = [...perTunnel.keys()].filter((id) => !byId.has(id));
    expect(strangers, `alerts for tunnels not in this test: ${some(strangers)}`).toEqual([]);
    expect(new Set(requests.map((r) => r.alertId)).size).toBe(TUNNELS);

    const early: string[] = [];
    const misworded: string[] = [];
    const lateness: number[] = [];
    for (const r of requests) {
      const alert = r.alert;
      if (!alert) continue;
      const id = alert.tunnel.id;
      const downSince = since.get(id) ?? Number.NaN;
      // Not before the incident has lasted the grace; it began at A's last heartbeat (≤ the kill).
      if (!(r.at - downSince >= GRACE_MS)) early.push(`${id} ${r.at - downSince} ms after its since`);
      lateness.push(r.at - downSince - GRACE_MS);
      // The page names the tunnel and its workspace, and the incident the API showed: down since
      // A was lost (worker_lost; past the reconnect window, that no customer came back).
      const isRight =
        alert.status.state === 'down' &&
        ['worker_lost', 'customer_not_connected'].includes(alert.status.error?.code ?? '') &&
        Date.parse(alert.status.since) === downSince &&
        alert.tunnel.name === byId.get(id)?.name &&
        alert.tunnel.workspaceId === workspaceOf.get(id);
      if (!isRight) misworded.push(`${id} ${JSON.stringify(alert)}`);
    }
    expect(early, `paged before the grace (${GRACE_MS} ms) had passed: ${some(early)}`).toEqual([]);
    expect(misworded, `alerts that are not this incident's: ${some(misworded)}`).toEqual([]);

    const shown = downMs.map((d) => d.ms).sort((x, y) => x - y);
    console.info(
      `figure: gateway SIGKILL with ${TUNNELS} tunnels: all shown down through the API ` +
        `${shown[0]}–${shown[shown.length - 1]} ms after the kill (bound ${DOWN_BOUND_MS} ms); ` +
        `${TUNNELS} × tunnel.down ${Math.min(...lateness)}–${Math.max(...lateness)} ms after the grace; ` +
        `phases: ${phases.join(', ')}`,
    );
    // Minutes on a busy machine: 2,000 transactions of DynamoDB Local before the kill, as many after.
  }, 300_000);
});

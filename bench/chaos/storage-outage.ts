/**
 * Chaos scenario "storage outage" (issue 12): `npm start`'s own DynamoDB Local killed by pid while a
 * reverse tunnel (the customer's autossh) and a standard tunnel (a real OpenSSH bastion) carry
 * traffic: new connections through both every 100 ms, and one connection held open on each. The
 * tunnels must go on carrying it for two minutes from the kill, the API answer 503 with
 * Retry-After meanwhile, and npm start bring DynamoDB Local back by itself (within 30 s) on the
 * same files and port, after which nothing may be lost or falsely recorded.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../local/free-port';
import type { Tunnel, TunnelEvent } from '../../shared/schemas';
import { type AlertReceiver, startAlertReceiver } from '../../test/helpers/alert-receiver';
import { alertTimingEnv } from '../../test/helpers/alert-timing';
import { Bastion } from '../../test/helpers/bastion';
import { Customer, requireTools, sshKeygen } from '../../test/helpers/customer';
import { echoProbe, startEchoServer } from '../../test/helpers/echo';
import { type ApiResponse, apiClient } from '../../test/helpers/http-api';
import { disposeStacks, type StartedStack, startStack } from '../../test/helpers/local-stack';
import { waitFor } from '../../test/helpers/wait-for';
import { Cleanup } from '../support/cleanup';
import type { ChaosFigure } from './figures';

export interface StorageOutageSizes {
  /** How long the tunnels must keep carrying traffic from the kill. */
  carryMs: number;
  /** DynamoDB Local must be back (readiness 200) within this of the kill. */
  backWithinMs: number;
}

export const FULL_SIZE: StorageOutageSizes = { carryMs: 120_000, backWithinMs: 30_000 };

/** What the scenario saw, for the test's assertions; `figures` for `npm run chaos`. */
export interface StorageOutageResult {
  figures: ChaosFigure[];
  /** The API's answer to a listing during the outage. */
  outageAnswer: ApiResponse;
  readyzDuringOutage: { status: number; storageOk: boolean };
  healthzDuringOutage: number;
  /** Kill to readiness 200 again. */
  backMs: number;
  /** What npm start logged about DynamoDB Local (message texts). */
  supervisorLog: string[];
  probes: { ok: number; failed: number };
  held: { ok: number; failed: number; open: boolean; slowestEchoMs: number }[];
  tunnelsBefore: Tunnel[];
  tunnelsAfter: Tunnel[];
  eventsBefore: TunnelEvent[][];
  eventsAfter: TunnelEvent[][];
  alertsReceived: number;
}

/** Alerts would be a false page here: a grace far longer than the outage. */
const GRACE_MS = 60_000;
const PROBE_EVERY_MS = 100;
const HELD_ECHO_EVERY_MS = 500;
/** An echo on a held connection later than this counts as lost: the tunnel stopped carrying bytes. */
const HELD_ECHO_LOST_AFTER_MS = 5_000;

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

export async function runStorageOutage(
  sizes: StorageOutageSizes = FULL_SIZE,
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<StorageOutageResult> {
  requireTools('ssh', 'autossh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep', 'java');
  const cleanup = new Cleanup();
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;
  const secret = `whsec_${randomBytes(24).toString('base64url')}`;
  try {
    const dataDir = await mkdtemp(join(tmpdir(), 'tk-outage-'));
    cleanup.add('data dir', () => rm(dataDir, { recursive: true, force: true }));
    const receiver: AlertReceiver = await startAlertReceiver(() => secret);
    cleanup.add('alert receiver', () => receiver.close());
    const echo = await startEchoServer();
    cleanup.add('echo service', () => echo.close());
    const bastion = await Bastion.start();
    cleanup.add('bastion', () => bastion.dispose());
    const customer = await Customer.create();
    cleanup.add('customer', () => customer.dispose());
    const stacks: StartedStack[] = [];
    cleanup.add('npm start', () => disposeStacks(stacks));
    const stack = await startStack(
      {
        DATA_DIR: dataDir,
        // npm start's own DynamoDB Local, files in DATA_DIR: what it must bring back by itself.
        DYNAMODB_ENDPOINT: '',
        SSH_PORT: String(await freePort()),
        BOOTSTRAP_API_KEY: apiKey,
        ADMIN_TOKEN: `tka_${randomBytes(24).toString('base64url')}`,
        TUNNEL_PORT_RANGE: '11500-11599',
        ...alertTimingEnv(GRACE_MS),
        ALERT_WEBHOOK_URL: receiver.url,
        ALERT_WEBHOOK_SECRET: secret,
        LOG_LEVEL: 'debug',
      },
      60_000,
      'node',
    );
    stacks.push(stack);
    const api = apiClient(() => stack.baseUrl, apiKey);

    const tunnelsBefore = await twoTunnelsUp(api, customer, bastion, echo.port);
    const ids = tunnelsBefore.map((t) => t.id);
    const events = () =>
      Promise.all(ids.map(async (id) => (await api.call('GET', `/v1/tunnels/${id}/events`)).json.items));
    // The sweeper has recorded both tunnels up: the history from here must not change.
    const eventsBefore = await waitFor(
      async () => {
        const all: TunnelEvent[][] = await events();
        return all.every((history) => history[0]?.to === 'up') ? all : undefined;
      },
      15_000,
      { what: 'both tunnels recorded up', intervalMs: 200 },
    );

    const ports = tunnelsBefore.map((t) => t.connect?.port ?? 0);
    const held = ports.map((port) => heldConnection(port, HELD_ECHO_EVERY_MS));
    cleanup.add('held connections', () => {
      for (const h of held) h.close();
    });
    const probes = { ok: 0, failed: 0 };
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const results = await Promise.all(ports.map((port) => echoProbe('127.0.0.1', port, 2_000)));
        for (const ok of results) {
          if (ok) probes.ok++;
          else probes.failed++;
        }
        await new Promise((resolve) => setTimeout(resolve, PROBE_EVERY_MS));
      }
    })();

    const pid = await waitFor(() => dynamoDbLocalPid(dataDir), 5_000, { what: 'the DynamoDB Local pid' });
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    log(`storage outage: DynamoDB Local (pid ${pid}) killed`);

    const outageAnswer = await waitFor(
      async () => {
        const res = await api.call('GET', '/v1/tunnels');
        return res.status === 503 ? res : undefined;
      },
      10_000,
      { what: 'the API answering 503 during the outage', intervalMs: 100 },
    );
    const readiness = await fetch(`${stack.baseUrl}/readyz`);
    const readyzBody = (await readiness.json()) as { checks?: { storage?: { ok?: boolean } } };
    const readyzDuringOutage = {
      status: readiness.status,
      storageOk: readyzBody.checks?.storage?.ok === true,
    };
    const healthzDuringOutage = (await fetch(`${stack.baseUrl}/healthz`)).status;

    await waitFor(async () => (await fetch(`${stack.baseUrl}/readyz`)).status === 200, sizes.backWithinMs, {
      what: `readiness back within ${sizes.backWithinMs} ms of the kill`,
      intervalMs: 250,
    });
    const backMs = Date.now() - killedAt;
    log(`storage outage: ready again ${backMs} ms after the kill; traffic goes on to ${sizes.carryMs} ms`);

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, killedAt + sizes.carryMs - Date.now())));
    probing = false;
    await prober;
    const heldStats = held.map((h) => h.stats());

    const tunnelsAfter = await Promise.all(ids.map((id) => api.getTunnel(id)));
    const eventsAfter = await events();
    const failedEchoes = heldStats.reduce((n, s) => n + s.failed, 0);
    const figures: ChaosFigure[] = [
      {
        name: 'DynamoDB Local back (readiness 200) after the kill',
        value: backMs,
        unit: 'ms',
        target: `<= ${sizes.backWithinMs} ms`,
        ok: backMs <= sizes.backWithinMs,
      },
      {
        name: `new connections through the 2 tunnels over ${sizes.carryMs / 1000} s`,
        value: probes.ok,
        unit: '',
      },
      { name: 'of them failed', value: probes.failed, unit: '', target: '= 0', ok: probes.failed === 0 },
      { name: 'echoes on the 2 held connections', value: heldStats.reduce((n, s) => n + s.ok, 0), unit: '' },
      {
        name: 'slowest echo on a held connection',
        value: Math.max(...heldStats.map((s) => s.slowestEchoMs)),
        unit: 'ms',
      },
      {
        name: 'of them failed or connections lost',
        value: failedEchoes + heldStats.filter((s) => !s.open).length,
        unit: '',
        target: '= 0',
        ok: failedEchoes === 0 && heldStats.every((s) => s.open),
      },
      {
        name: 'API answer during the outage',
        value: outageAnswer.status,
        unit: '',
        target: '= 503',
        ok: outageAnswer.status === 503,
      },
      {
        name: 'tunnels up afterwards',
        value: tunnelsAfter.filter(isUp).length,
        unit: 'of 2',
        target: '= 2',
        ok: tunnelsAfter.every(isUp),
      },
      {
        name: 'alerts sent (grace 60 s)',
        value: receiver.requests.length,
        unit: '',
        target: '= 0',
        ok: receiver.requests.length === 0,
      },
    ];
    return {
      figures,
      outageAnswer,
      readyzDuringOutage,
      healthzDuringOutage,
      backMs,
      supervisorLog: stack.lines.map((l) => String(l.msg)).filter((msg) => msg.startsWith('dynamodb local')),
      probes,
      held: heldStats,
      tunnelsBefore,
      tunnelsAfter,
      eventsBefore,
      eventsAfter,
      alertsReceived: receiver.requests.length,
    };
  } finally {
    await cleanup.runAll(log);
  }
}

/** A reverse tunnel held by the customer's autossh and a standard tunnel through `bastion`, both up. */
async function twoTunnelsUp(
  api: ReturnType<typeof apiClient>,
  customer: Customer,
  bastion: Bastion,
  servicePort: number,
): Promise<Tunnel[]> {
  const service = { host: '127.0.0.1', port: servicePort };
  const key = await sshKeygen('ed25519');
  const reverse = await api.createReverse('reverse', service, key.publicKey);
  if (!reverse.reverse) throw new Error('no reverse block');
  await customer.installKey(reverse.id, key.privateKey);
  await customer.trustHosts(reverse.reverse.knownHostsLine);
  customer.start(reverse.reverse.commands.autossh);
  const created = await api.call('POST', '/v1/tunnels', {
    type: 'standard',
    name: 'standard',
    ssh: { host: '127.0.0.1', port: bastion.port, user: bastion.user },
    service,
  });
  if (created.status !== 201)
    throw new Error(`standard tunnel: ${created.status} ${JSON.stringify(created.json)}`);
  const standard: Tunnel = created.json;
  await bastion.setAuthorizedKeys([standard.authorizedKeysLine ?? '']);
  return waitFor(
    async () => {
      const both = await Promise.all([api.getTunnel(reverse.id), api.getTunnel(standard.id)]);
      return both.every(isUp) ? both : undefined;
    },
    30_000,
    { what: 'both tunnels up', intervalMs: 200 },
  );
}

/** The pid of the java process serving the DynamoDB Local files under `dataDir`. */
function dynamoDbLocalPid(dataDir: string): number | undefined {
  try {
    const out = execFileSync('pgrep', ['-f', `^java .*-dbPath ${join(dataDir, 'dynamodb')}`], {
      encoding: 'utf8',
    });
    const pids = out
      .trim()
      .split('\n')
      .map(Number)
      .filter((pid) => pid > 0);
    return pids.length === 1 ? pids[0] : undefined;
  } catch {
    return undefined; // pgrep exits 1 when nothing matches
  }
}

/**
 * A connection through a tunnel that stays open and echoes one nonce at a time: the next is sent
 * `everyMs` after the last came back, so a late echo is measured as latency instead of shifting
 * every later comparison. An echo that takes longer than `lostAfterMs`, or comes back wrong, fails.
 */
function heldConnection(port: number, everyMs: number, lostAfterMs = HELD_ECHO_LOST_AFTER_MS) {
  let ok = 0;
  let failed = 0;
  let slowestEchoMs = 0;
  let socket: Socket | undefined = connect({ host: '127.0.0.1', port });
  let pending: { nonce: Buffer; sentAt: number; late: boolean } | undefined;
  let got = Buffer.alloc(0);
  let next: NodeJS.Timeout | undefined;
  const send = () => {
    if (!socket) return;
    pending = { nonce: randomBytes(16), sentAt: performance.now(), late: false };
    socket.write(pending.nonce);
  };
  socket.on('error', () => {});
  socket.on('close', () => {
    socket = undefined;
  });
  socket.on('data', (chunk: Buffer) => {
    got = Buffer.concat([got, chunk]);
    if (!pending || got.length < pending.nonce.length) return;
    const matches = got.subarray(0, pending.nonce.length).equals(pending.nonce);
    slowestEchoMs = Math.max(slowestEchoMs, performance.now() - pending.sentAt);
    if (!matches) failed++;
    else if (!pending.late) ok++;
    got = got.subarray(pending.nonce.length);
    pending = undefined;
    next = setTimeout(send, everyMs);
  });
  const watchdog = setInterval(() => {
    if (pending && !pending.late && performance.now() - pending.sentAt > lostAfterMs) {
      pending.late = true;
      failed++;
    }
  }, 100);
  socket.once('connect', send);
  return {
    stats: () => ({ ok, failed, open: socket !== undefined, slowestEchoMs: Math.round(slowestEchoMs) }),
    close() {
      clearTimeout(next);
      clearInterval(watchdog);
      socket?.destroy();
    },
  };
}

/**
 * Static stability (issue 12, acceptance 5): `npm start`'s own DynamoDB Local killed by pid while
 * a reverse tunnel (the customer's autossh) and a standard tunnel (a real OpenSSH bastion) carry
 * traffic. Both keep carrying it, new connections and one that stays open, for two minutes; the
 * API answers 503 with Retry-After and /readyz names the failing check while /healthz stays ok;
 * npm start brings DynamoDB Local back by itself on the same files and port; afterwards everything
 * is as it was: both tunnels listed and up, no false outage in the history, no alert.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../local/free-port';
import type { Tunnel } from '../../shared/schemas';
import { type AlertReceiver, startAlertReceiver } from '../helpers/alert-receiver';
import { alertTimingEnv } from '../helpers/alert-timing';
import { Bastion } from '../helpers/bastion';
import { Cleanups } from '../helpers/cleanups';
import { Customer, requireTools, sshKeygen } from '../helpers/customer';
import { type EchoServer, echoProbe, startEchoServer } from '../helpers/echo';
import { apiClient } from '../helpers/http-api';
import { disposeStacks, type StartedStack, startStack } from '../helpers/local-stack';
import { waitFor } from '../helpers/wait-for';

/** How long the tunnels must keep carrying traffic from the moment the database is killed. */
const CARRY_MS = 120_000;
/** CONTRACT: DynamoDB Local back by itself within this. */
const BACK_WITHIN_MS = 30_000;
const GRACE_MS = 60_000;

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

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

/** A connection through a tunnel that stays open and echoes a nonce every `everyMs`. */
function heldConnection(port: number, everyMs: number) {
  let ok = 0;
  let failed = 0;
  let socket: Socket | undefined = connect({ host: '127.0.0.1', port });
  let expecting: Buffer | undefined;
  let got = Buffer.alloc(0);
  socket.on('error', () => {});
  socket.on('close', () => {
    socket = undefined;
  });
  socket.on('data', (chunk: Buffer) => {
    got = Buffer.concat([got, chunk]);
    if (expecting && got.length >= expecting.length) {
      if (got.subarray(0, expecting.length).equals(expecting)) ok++;
      else failed++;
      got = got.subarray(expecting.length);
      expecting = undefined;
    }
  });
  const timer = setInterval(() => {
    if (!socket) return;
    if (expecting) failed++; // the last one never came back
    expecting = randomBytes(16);
    socket.write(expecting);
  }, everyMs);
  return {
    stats: () => ({ ok, failed, open: socket !== undefined }),
    close() {
      clearInterval(timer);
      socket?.destroy();
    },
  };
}

describe('DynamoDB Local killed under npm start while tunnels carry traffic', () => {
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;
  const secret = `whsec_${randomBytes(24).toString('base64url')}`;
  const cleanups = new Cleanups();
  const stacks: StartedStack[] = [];
  let dataDir = '';
  let receiver: AlertReceiver;
  let echo: EchoServer;
  let customer: Customer;
  let bastion: Bastion;
  let stack: StartedStack;

  beforeAll(async () => {
    requireTools('ssh', 'autossh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep', 'java');
    dataDir = await mkdtemp(join(tmpdir(), 'tk-outage-'));
    cleanups.add(() => rm(dataDir, { recursive: true, force: true }));
    receiver = await startAlertReceiver(() => secret);
    cleanups.add(() => receiver.close());
    echo = await startEchoServer();
    cleanups.add(() => echo.close());
    bastion = await Bastion.start();
    cleanups.add(() => bastion.dispose());
    customer = await Customer.create();
    cleanups.add(() => customer.dispose());
    stack = await startStack(
      {
        DATA_DIR: dataDir,
        // npm start's own DynamoDB Local, files in DATA_DIR: what it must bring back by itself.
        DYNAMODB_ENDPOINT: '',
        SSH_PORT: String(await freePort()),
        BOOTSTRAP_API_KEY: apiKey,
        ADMIN_TOKEN: `tka_${randomBytes(24).toString('base64url')}`,
        TUNNEL_PORT_RANGE: '33500-33599',
        ...alertTimingEnv(GRACE_MS),
        ALERT_WEBHOOK_URL: receiver.url,
        ALERT_WEBHOOK_SECRET: secret,
        LOG_LEVEL: 'debug',
      },
      60_000,
      'node',
    );
    stacks.push(stack);
  }, 90_000);

  afterAll(async () => {
    try {
      await disposeStacks(stacks);
    } finally {
      await cleanups.runAll();
    }
  });

  it('keeps both tunnels carrying traffic, answers 503, heals by itself, and loses nothing', async () => {
    const api = apiClient(() => stack.baseUrl, apiKey);
    const key = await sshKeygen('ed25519');
    const reverse = await api.createReverse('reverse', { host: '127.0.0.1', port: echo.port }, key.publicKey);
    if (!reverse.reverse) throw new Error('no reverse block');
    await customer.installKey(reverse.id, key.privateKey);
    await customer.trustHosts(reverse.reverse.knownHostsLine);
    customer.start(reverse.reverse.commands.autossh);
    const created = await api.call('POST', '/v1/tunnels', {
      type: 'standard',
      name: 'standard',
      ssh: { host: '127.0.0.1', port: bastion.port, user: bastion.user },
      service: { host: '127.0.0.1', port: echo.port },
    });
    expect(created.status).toBe(201);
    const standard: Tunnel = created.json;
    await bastion.setAuthorizedKeys([standard.authorizedKeysLine ?? '']);
    const ready = await waitFor(
      async () => {
        const both = await Promise.all([api.getTunnel(reverse.id), api.getTunnel(standard.id)]);
        return both.every(isUp) ? both : undefined;
      },
      30_000,
      { what: 'both tunnels up', intervalMs: 200 },
    );
    const ports = ready.map((t) => t.connect?.port ?? 0);
    const eventsBefore = await Promise.all(
      ready.map(async (t) => (await api.call('GET', `/v1/tunnels/${t.id}/events`)).json.items),
    );

    // Traffic through both: a new connection every 100 ms each, and one held open on each.
    const held = ports.map((port) => heldConnection(port, 500));
    const probes = { ok: 0, failed: 0 };
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const results = await Promise.all(ports.map((port) => echoProbe('127.0.0.1', port, 2_000)));
        for (const ok of results) {
          if (ok) probes.ok++;
          else probes.failed++;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    const pid = await waitFor(() => dynamoDbLocalPid(dataDir), 5_000, { what: 'the DynamoDB Local pid' });
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');

    // The outage as callers see it: 503 with Retry-After, readiness names storage, liveness holds.
    const refused = await waitFor(
      async () => {
        const res = await api.call('GET', '/v1/tunnels');
        return res.status === 503 ? res : undefined;
      },
      10_000,
      { what: 'the API answering 503 during the outage', intervalMs: 100 },
    );
    expect(refused.json.error).toMatchObject({ code: 'unavailable', details: { dependency: 'table' } });
    expect(Number(refused.headers.get('Retry-After'))).toBeGreaterThan(0);
    const readiness = await fetch(`${stack.baseUrl}/readyz`);
    expect(readiness.status).toBe(503);
    expect(((await readiness.json()) as { checks: { storage: { ok: boolean } } }).checks.storage.ok).toBe(
      false,
    );
    expect((await fetch(`${stack.baseUrl}/healthz`)).status).toBe(200);

    // Back by itself, on the same files and port.
    await waitFor(async () => (await fetch(`${stack.baseUrl}/readyz`)).status === 200, BACK_WITHIN_MS, {
      what: `readiness back within ${BACK_WITHIN_MS} ms of the kill`,
      intervalMs: 250,
    });
    const backMs = Date.now() - killedAt;
    expect(stack.lines.some((l) => l.msg === 'dynamodb local exited; restarting it')).toBe(true);
    expect(stack.lines.some((l) => l.msg === 'dynamodb local restarted')).toBe(true);

    // Traffic goes on until two minutes after the kill.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, killedAt + CARRY_MS - Date.now())));
    probing = false;
    await prober;
    const heldStats = held.map((h) => h.stats());
    for (const h of held) h.close();
    expect(probes.failed).toBe(0);
    expect(probes.ok).toBeGreaterThan(200);
    for (const stats of heldStats) {
      expect(stats).toMatchObject({ failed: 0, open: true });
      expect(stats.ok).toBeGreaterThan(CARRY_MS / 500 / 2);
    }

    // Consistent afterwards: both listed and up, no false outage recorded, nobody paged.
    const listed = (await api.call('GET', '/v1/tunnels')).json;
    expect(listed.items.map((t: Tunnel) => t.id).sort()).toEqual([reverse.id, standard.id].sort());
    expect(listed.items.every(isUp)).toBe(true);
    const eventsAfter = await Promise.all(
      ready.map(async (t) => (await api.call('GET', `/v1/tunnels/${t.id}/events`)).json.items),
    );
    expect(eventsAfter).toEqual(eventsBefore);
    expect(receiver.requests).toEqual([]);
    console.info(
      `figure: DynamoDB Local killed: back (readyz 200) ${backMs} ms later; over ${CARRY_MS / 1000} s ` +
        `${probes.ok} new connections through the two tunnels, ${probes.failed} failed; held connections ` +
        `${heldStats.map((s) => `${s.ok} echoes`).join(' and ')}, 0 failed; 0 alerts, no event recorded`,
    );
  }, 240_000);
});

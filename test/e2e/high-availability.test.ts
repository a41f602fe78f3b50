/**
 * High availability (issue 17): a reverse tunnel with two connectors, two customer hosts (throwaway
 * Unix users running the generated autossh commands with real OpenSSH), each on its own gateway
 * process: `npm start` (A) and `npm run gateway` (B) over one DynamoDB table and one DATA_DIR. Every
 * gateway listens on the tunnel's port (SO_REUSEPORT), so 127.0.0.1:<port> is the one stable address
 * the platform's loop dials; a gateway with no session of its own relays to one that has.
 *
 * Connector 2's command is the one the API renders, with `-p` pointed at B's SSH port: locally the
 * customers dial a gateway's own port, where in AWS the public NLB picks one.
 *
 * The rolling restart also carries a standard tunnel through a real OpenSSH bastion: the stopping
 * gateway offers it and serves on until the other is up with it (make-before-break).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../local/free-port';
import type { Tunnel } from '../../shared/schemas';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { type AlertReceiver, startAlertReceiver } from '../helpers/alert-receiver';
import { alertTimingEnv } from '../helpers/alert-timing';
import { Bastion } from '../helpers/bastion';
import { startConnectionLoop } from '../helpers/connection-loop';
import { Customer, customerFor, requireTools, sshKeygen } from '../helpers/customer';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { apiClient } from '../helpers/http-api';
import { disposeStacks, killStack, type StartedStack, startStack } from '../helpers/local-stack';
import { migrateQueuedConnections } from '../helpers/migrate-req';
import { waitFor, withTimeout } from '../helpers/wait-for';

/** SIGTERM, then the process's own exit: 0, having logged `stopped` (read once its output is all in). */
async function stopCleanly(stack: StartedStack): Promise<{ ms: number }> {
  const { ms } = await stack.stop('SIGTERM');
  const { child } = stack;
  if (child.exitCode === null && child.signalCode === null)
    await withTimeout(once(child, 'exit'), 10_000, 'exit');
  expect(child.exitCode, stack.output.slice(-5).join('\n')).toBe(0);
  // Its main exits 0 only once the stop finished (the `stopped` line may be cut off from a busy pipe).
  expect(ms).toBeLessThan(10_000);
  return { ms };
}

/** Longer than heartbeat staleness (3 s here): a real outage of a few seconds pages; a restart handed over does not. */
const GRACE_MS = 4_000;

describe('a reverse tunnel with two connectors on two gateways', () => {
  const endpoint = inject('dynamoEndpoint');
  const tableName = `test-${randomBytes(6).toString('hex')}`;
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;
  const stacks: StartedStack[] = [];
  const customers: Customer[] = [];
  let dataDir = '';
  let echo: EchoServer | undefined;
  let env: Record<string, string> = {};
  let a: StartedStack | undefined;
  let b: StartedStack | undefined;
  let sshPortA = 0;
  let sshPortB = 0;
  let receiver: AlertReceiver | undefined;
  let bastion: Bastion | undefined;
  let restoreMigrateReq: (() => Promise<void>) | undefined;
  /** The two-connector tunnel and its hosts, for the rolling restart after the first cell. */
  let ha: { tunnel: Tunnel; hosts: Customer[] } | undefined;

  beforeAll(async () => {
    requireTools('ssh', 'autossh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    dataDir = await mkdtemp(join(tmpdir(), 'tk-ha-'));
    echo = await startEchoServer();
    const secret = `whsec_${randomBytes(24).toString('base64url')}`;
    receiver = await startAlertReceiver(() => secret);
    // What a restarting gateway's listeners still queue moves to the others (see reuseport-check.ts).
    restoreMigrateReq = await migrateQueuedConnections();
    sshPortA = await freePort();
    sshPortB = await freePort();
    env = {
      DATA_DIR: dataDir,
      DYNAMODB_ENDPOINT: endpoint,
      TABLE_NAME: tableName,
      BOOTSTRAP_API_KEY: apiKey,
      ADMIN_TOKEN: `tka_${randomBytes(24).toString('base64url')}`,
      TUNNEL_PORT_RANGE: '16500-16599',
      PUBLIC_SSH_PORT: String(sshPortA),
      ...alertTimingEnv(GRACE_MS),
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_WEBHOOK_SECRET: secret,
      POOL_POLL_INTERVAL_MS: '500',
    };
    // One at a time: the first writes DATA_DIR's host key and control token, the second reads them.
    a = await startStack({ ...env, SSH_PORT: String(sshPortA) }, 30_000, 'node');
    stacks.push(a);
    b = await startStack({ ...env, SSH_PORT: String(sshPortB) }, 30_000, 'node', 'gateway');
    stacks.push(b);
  }, 90_000);

  afterAll(async () => {
    try {
      for (const customer of customers) await customer.dispose().catch(() => {});
    } finally {
      await disposeStacks(stacks);
      const { client } = createDynamoClients({ region: 'us-east-1', endpoint });
      await client.send(new DeleteTableCommand({ TableName: tableName })).catch(() => {});
      client.destroy();
      await Promise.all([echo?.close(), receiver?.close(), bastion?.dispose()]);
      await restoreMigrateReq?.();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('carries every new connection while a connector dies and while the gateway of the other is killed', async () => {
    if (!a || !b || !echo) throw new Error('beforeAll did not finish');
    const gatewayA = a;
    const gatewayB = b;
    const api = apiClient(() => gatewayA.baseUrl, apiKey);
    const key1 = await sshKeygen('ed25519');
    const key2 = await sshKeygen('ed25519');
    const created = await api.call('POST', '/v1/tunnels', {
      type: 'reverse',
      name: 'ha',
      service: { host: '127.0.0.1', port: echo.port },
      publicKey: key1.publicKey,
      reverse: { connectors: 2 },
    });
    expect(created.status).toBe(201);
    const tunnel = created.json as Tunnel;
    expect(tunnel.reverse?.connectors).toBe(2);
    const added = await api.call('POST', `/v1/tunnels/${tunnel.id}/connectors`, {
      publicKey: key2.publicKey,
    });
    expect(added.status).toBe(201);
    const connectorId = String(added.json.id);
    expect(added.json.privateKey).toBeUndefined();
    expect(added.json.commands.autossh).toContain(`tunnelkeeper_${tunnel.id}_${connectorId}`);

    // Host 1 runs the tunnel's own command on A; host 2 its connector's on B.
    const host1 = await customerFor(tunnel, key1.privateKey);
    customers.push(host1);
    const host2 = await Customer.create();
    customers.push(host2);
    await host2.writeFile(`.ssh/tunnelkeeper_${tunnel.id}_${connectorId}`, key2.privateKey);
    // B has the same host key (one DATA_DIR); known_hosts names it with B's port.
    const knownHosts = tunnel.reverse?.knownHostsLine ?? '';
    expect(knownHosts).toContain(`]:${sshPortA} `);
    await host2.trustHosts(knownHosts.replace(`]:${sshPortA} `, `]:${sshPortB} `));
    const command1 = tunnel.reverse?.commands.autossh ?? '';
    const command2 = String(added.json.commands.autossh).replace(`-p ${sshPortA} `, `-p ${sshPortB} `);
    expect(command2).toContain(`-p ${sshPortB} `);
    host1.start(command1);
    host2.start(command2);

    const status = async () => (await api.getTunnel(tunnel.id)).status;
    await waitFor(async () => (await status()).connectors?.live === 2, 30_000, {
      what: 'both connectors live',
    }).catch(async (err) => {
      const logs = [
        ...gatewayA.lines.map((l) => ({ g: 'A', ...l })),
        ...gatewayB.lines.map((l) => ({ g: 'B', ...l })),
      ]
        .filter((l) => JSON.stringify(l).includes(tunnel.id))
        .map((l) => JSON.stringify(l));
      throw new Error(`${err}\n${JSON.stringify(await status())}\n${logs.join('\n')}`);
    });
    // Each gateway carries one and has learnt that the other carries the other.
    for (const gateway of [gatewayA, gatewayB]) {
      await gateway.waitForLog(
        (l) =>
          (l.msg === 'tunnel peers changed' || l.msg === 'tunnel relay listening') &&
          l.tunnelId === tunnel.id &&
          Array.isArray(l.peers) &&
          l.peers.length === 1,
        10_000,
      );
    }
    const listed = await api.call('GET', `/v1/tunnels/${tunnel.id}/connectors`);
    expect(listed.status).toBe(200);
    expect(listed.json.items.map((c: { id: string; live: boolean }) => [c.id, c.live])).toEqual([
      ['primary', true],
      [connectorId, true],
    ]);

    // Acceptance 1: host 2's ssh is killed. Its autossh is held (SIGSTOP) until the status has
    // shown the loss, so the window is seen whatever the timing, then let go: it comes back by itself.
    const port = tunnel.connect?.port ?? tunnel.reverse?.remotePort ?? 0;
    let loop = startConnectionLoop('127.0.0.1', port);
    const sshOf2 = await host2.pidOf('ssh');
    const autosshOf2 = await host2.pidOf('autossh');
    await waitFor(() => loop.attempts().length >= 10, 5_000, { what: 'the loop running' });
    process.kill(autosshOf2, 'SIGSTOP');
    const killedConnectorAt = Date.now();
    process.kill(sshOf2, 'SIGKILL');
    const closedAt = Date.parse(
      String(
        (
          await gatewayB.waitForLog(
            (l) =>
              l.msg === 'ssh connection closed' &&
              l.tunnelId === tunnel.id &&
              Date.parse(String(l.time)) >= killedConnectorAt - 1_000,
            5_000,
          )
        ).time,
      ),
    );
    let degraded: Tunnel['status'] | undefined;
    try {
      degraded = await waitFor(
        async () => {
          const s = await status();
          return s.connectors?.live === 1 ? s : undefined;
        },
        10_000,
        { what: 'the status showing 1 of 2 live' },
      );
    } finally {
      process.kill(autosshOf2, 'SIGCONT');
    }
    expect(degraded.state).toBe('up');
    expect(degraded.connectors).toEqual({ live: 1, expected: 2 });
    expect(degraded.warnings?.map((w) => w.code)).toContain('connectors_missing');
    expect(degraded.warnings?.find((w) => w.code === 'connectors_missing')?.message).toContain(connectorId);
    await waitFor(async () => (await status()).connectors?.live === 2, 30_000, { what: 'connector 2 back' });
    const backAt = Date.now();
    // A while longer, carried by both again (on a loaded machine the whole loss can take 2 s).
    await waitFor(() => loop.attempts().filter((x) => x.at > backAt).length >= 10, 10_000, {
      what: '10 connections after connector 2 came back',
    });
    let attempts = await loop.stop();
    expect(attempts.filter((x) => x.at >= killedConnectorAt && x.at <= backAt).length).toBeGreaterThan(0);
    // Open through host 2's ssh at the instant it died (in flight then): counted, not required to survive.
    const inFlight = attempts.filter((x) => !x.ok && x.at <= closedAt && x.endedAt >= killedConnectorAt);
    const failed = attempts.filter((x) => !x.ok && !inFlight.includes(x));
    console.info(
      `connector killed: ${attempts.length} connections, ${inFlight.length} failed that were in flight at the kill, ${failed.length} others`,
    );
    const around = (from: number, to: number) =>
      [...gatewayA.lines.map((l) => ({ g: 'A', ...l })), ...gatewayB.lines.map((l) => ({ g: 'B', ...l }))]
        .filter((l) => {
          const t = Date.parse(String((l as { time?: unknown }).time));
          return t >= from - 300 && t <= to + 300;
        })
        .map((l) => JSON.stringify(l))
        .join('\n');
    expect(failed, failed.length > 0 ? around(failed[0]?.at ?? 0, failed.at(-1)?.endedAt ?? 0) : '').toEqual(
      [],
    );

    // Acceptance 2: B, which holds connector 2, dies without a word.
    loop = startConnectionLoop('127.0.0.1', port);
    await waitFor(() => loop.attempts().length >= 10, 5_000, { what: 'the loop running' });
    const killedAt = await killStack(gatewayB, 'B');
    const detected = await waitFor(
      async () => ((await status()).connectors?.live === 1 ? Date.now() : undefined),
      15_000,
      { what: 'the status showing B lost' },
    );
    // A while longer, carried by A alone.
    await waitFor(() => loop.attempts().filter((x) => x.at > detected).length >= 50, 10_000, {
      what: '50 connections after the loss was detected',
    });
    attempts = await loop.stop();
    // Open when B died (started before, ended after): those through B may fail, and are counted.
    const failedAtKill = attempts.filter((x) => !x.ok && x.endedAt >= killedAt && x.at < detected);
    console.info(
      `gateway SIGKILL: ${attempts.length} connections, ${failedAtKill.length} failed between the kill and its detection ` +
        `(${detected - killedAt} ms), ${attempts.filter((x) => !x.ok && x.at >= detected).length} after`,
    );
    expect(attempts.filter((x) => !x.ok && x.at >= detected)).toEqual([]);
    expect(attempts.filter((x) => !x.ok && x.endedAt < killedAt)).toEqual([]);
    expect((await status()).state).toBe('up');
    ha = { tunnel, hosts: [host1, host2] };
  }, 120_000);

  it('still lets the same key on two hosts take over a one-connector tunnel (no fight guard)', async () => {
    if (!a || !echo) throw new Error('beforeAll did not finish');
    const gatewayA = a;
    const api = apiClient(() => gatewayA.baseUrl, apiKey);
    const key = await sshKeygen('ed25519');
    const tunnel = await api.createReverse('single', { host: '127.0.0.1', port: echo.port }, key.publicKey);
    expect(tunnel.status.connectors).toBeUndefined();
    const first = await customerFor(tunnel, key.privateKey);
    customers.push(first);
    const second = await customerFor(tunnel, key.privateKey);
    customers.push(second);
    const command = tunnel.reverse?.commands.ssh ?? '';
    const firstSsh = first.start(command);
    await api.waitForTunnel(tunnel.id, (t) => t.status.state === 'up', 20_000);
    second.start(command);
    await gatewayA.waitForLog(
      (l) => l.msg === 'reverse tunnel taken over by a newer login' && l.tunnelId === tunnel.id,
      20_000,
    );
    // The first host's session is closed once drained; its plain ssh ends.
    await withTimeout(firstSsh.exited, 20_000, 'the first ssh to end');
    const after = await api.waitForTunnel(tunnel.id, (t) => t.status.state === 'up', 10_000);
    expect(after.connect?.port).toBe(tunnel.reverse?.remotePort);
    expect((await api.call('DELETE', `/v1/tunnels/${tunnel.id}`)).status).toBe(204);
  }, 60_000);

  it('loses no connection, pages nobody and records no down while every gateway restarts in turn', async () => {
    if (!a || !ha || !receiver) throw new Error('the first cell did not finish');
    const { tunnel } = ha;
    // B died in the first cell: a new B on its SSH port, where host 2's autossh comes back.
    b = await startStack({ ...env, SSH_PORT: String(sshPortB) }, 30_000, 'node', 'gateway');
    stacks.push(b);
    let current: StartedStack = a;
    const api = apiClient(() => current.baseUrl, apiKey);
    // A standard tunnel beside it, through a real OpenSSH bastion to the same echo service.
    bastion = await Bastion.start();
    const standardCreated = await api.call('POST', '/v1/tunnels', {
      type: 'standard',
      name: 'ha-standard',
      ssh: { host: '127.0.0.1', port: bastion.port, user: bastion.user },
      service: { host: '127.0.0.1', port: echo?.port },
    });
    expect(standardCreated.status).toBe(201);
    const standard = standardCreated.json as Tunnel;
    await bastion.setAuthorizedKeys([standard.authorizedKeysLine ?? '']);
    const allLive = () =>
      waitFor(
        async () =>
          (await api.getTunnel(tunnel.id)).status.connectors?.live === 2 &&
          (await api.getTunnel(standard.id)).status.state === 'up',
        30_000,
        { what: 'both connectors and the standard tunnel live', intervalMs: 100 },
      );
    await allLive();
    const alertsBefore = receiver.delivered().length;
    const port = tunnel.reverse?.remotePort ?? 0;
    const loop = startConnectionLoop('127.0.0.1', port, { maxDurationMs: 90_000, maxAttempts: 4_500 });
    const standardPort = (await api.getTunnel(standard.id)).connect?.port ?? 0;
    const standardLoop = startConnectionLoop('127.0.0.1', standardPort, {
      maxDurationMs: 90_000,
      maxAttempts: 4_500,
    });
    await waitFor(() => loop.attempts().length >= 10 && standardLoop.attempts().length >= 10, 5_000, {
      what: 'the loops running',
    });

    // B first (a gateway alone), then A (the gateway with the API and the sweeper): SIGTERM, start again.
    const marks: Record<string, number> = {};
    const seen: StartedStack[] = [a, b];
    // Every gateway's lines from 2 s before the first failed connection began to just after it
    // ended: what each side did while it hung (the lines around its start alone said nothing).
    const nearLogs = (failed: { at: number; endedAt: number }[]) => {
      const [first] = failed;
      if (!first) return '';
      return seen
        .flatMap((g, i) => g.lines.map((l) => ({ g: i, ...l })))
        .filter((l) => {
          const at = Date.parse(String((l as { time?: unknown }).time));
          return at >= first.at - 2_000 && at <= first.endedAt + 500;
        })
        .slice(0, 80)
        .map((l) => JSON.stringify(l))
        .join('\n');
    };
    const restartsBegan = Date.now();
    marks.stopB = restartsBegan;
    const stoppedB = await stopCleanly(b);
    marks.stoppedB = Date.now();
    b = await startStack({ ...env, SSH_PORT: String(sshPortB) }, 30_000, 'node', 'gateway');
    stacks.push(b);
    seen.push(b);
    marks.startedB = Date.now();
    await allLive();
    marks.stopA = Date.now();
    const stoppedA = await stopCleanly(current);
    marks.stoppedA = Date.now();
    a = await startStack({ ...env, SSH_PORT: String(sshPortA) }, 30_000, 'node');
    stacks.push(a);
    seen.push(a);
    marks.startedA = Date.now();
    current = a;
    await allLive();
    const [attempts, standardAttempts] = await Promise.all([loop.stop(), standardLoop.stop()]);
    console.info(
      `figure: rolling restart: ${attempts.length} connections through the reverse tunnel and ` +
        `${standardAttempts.length} through the standard one, ${[...attempts, ...standardAttempts].filter((x) => !x.ok).length} failed; ` +
        `stops took ${stoppedB.ms} ms (B) and ${stoppedA.ms} ms (A)`,
    );
    const failures = attempts.filter((x) => !x.ok);
    expect(failures, `marks ${JSON.stringify(marks)}; all logs near: ${nearLogs(failures)}`).toEqual([]);
    const standardFailures = standardAttempts.filter((x) => !x.ok);
    expect(
      standardFailures,
      `marks ${JSON.stringify(marks)}; all logs near: ${nearLogs(standardFailures)}`,
    ).toEqual([]);
    // The standard tunnel moved gateways at each stop, each time handed over, never down.
    const handedOver = seen.flatMap((g) => g.lines.filter((l) => l.msg === 'standard tunnel handed over'));
    expect(handedOver.length).toBeGreaterThanOrEqual(1);
    for (const id of [tunnel.id, standard.id]) {
      const events = await api.call('GET', `/v1/tunnels/${id}/events`);
      expect(
        events.json.items.filter(
          (e: { to: string; at: string }) => e.to === 'down' && Date.parse(e.at) >= restartsBegan,
        ),
      ).toEqual([]);
    }
    // A page would come after the grace: wait it out once the last restart is done.
    await waitFor(() => Date.now() - (attempts.at(-1)?.at ?? 0) > GRACE_MS + 2_000, GRACE_MS + 5_000, {
      what: 'the grace to pass',
      intervalMs: 250,
    });
    expect(receiver.delivered().length).toBe(alertsBefore);
  }, 150_000);
});

/**
 * Standard tunnels end to end (issue 4, acceptance 1, 2 and 4): the API creates the tunnel, the
 * customer installs `authorizedKeysLine` on a real OpenSSH bastion, and the platform side reaches an
 * echo service or a real PostgreSQL behind the bastion through `connect`. Every key type and auth
 * method connects, and a rebooted bastion is reconnected without any API call.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createDynamoClients } from '../../../shared/store/dynamo-client';
import { Bastion } from '../../helpers/bastion';
import { Cleanups } from '../../helpers/cleanups';
import { requireTools } from '../../helpers/customer';
import { type EchoServer, echoProbe, echoRoundTrip } from '../../helpers/echo';
import type { TestStack } from '../../helpers/gateway-stack';
import { type Postgres, requirePostgres, startPostgres } from '../../helpers/postgres';
import {
  createStandard,
  gatewayItems,
  holdEchoConnection,
  isUp,
  psql,
  startStandardWorld,
} from '../../helpers/standard';
import { waitFor } from '../../helpers/wait-for';

const MiB = 1024 * 1024;
const RECONNECT_INITIAL_MS = 100;
const RECONNECT_MAX_MS = 2_000;

describe('standard tunnels through a real OpenSSH bastion', () => {
  let stack: TestStack;
  let bastion: Bastion;
  let echo: EchoServer;
  let dynamo: ReturnType<typeof createDynamoClients>;
  /** What the customer has in the shared bastion's authorized_keys. */
  const installed: string[] = [];
  const cleanups = new Cleanups();

  beforeAll(async () => {
    requireTools('ssh-keygen', 'psql', 'pkill', 'pgrep', 'useradd', 'userdel');
    requirePostgres();
    ({ stack, bastion, echo, dynamo } = await startStandardWorld(cleanups, {
      portRange: '26000-26999',
      heartbeatIntervalMs: 1_000,
      env: {
        RECONNECT_INITIAL_MS: String(RECONNECT_INITIAL_MS),
        RECONNECT_MAX_MS: String(RECONNECT_MAX_MS),
        BASTION_READY_TIMEOUT_MS: '5000',
        POOL_POLL_INTERVAL_MS: '500',
      },
    }));
  });

  afterAll(() => cleanups.runAll());

  const target = (b: Bastion = bastion) => ({ host: '127.0.0.1', port: b.port, user: b.user });
  const echoService = () => ({ host: '127.0.0.1', port: echo.port });
  const install = async (line: string) => {
    installed.push(line);
    await bastion.setAuthorizedKeys(installed);
  };

  /** The key the pool's session authenticated with, from the STATE item it wrote. */
  async function keyInUse(tunnelId: string): Promise<string | undefined> {
    return (await gatewayItems(dynamo.doc, stack.tableName, [tunnelId])).get(tunnelId)?.state?.keyFingerprint;
  }

  it('is up within 15 s of installing authorizedKeysLine, pins the host key and moves 64 MiB both ways', async () => {
    const created = await createStandard(stack.api, { ssh: target(), service: echoService() });
    expect(created.type).toBe('standard');
    expect(created.connect).toBeNull();
    expect(created.ssh).toEqual(target());
    expect(created.authorizedKeysLine).toBe(
      `no-agent-forwarding,no-X11-forwarding,no-pty,command="echo this key only opens a forward to its tunnel service; exit 1",permitopen="127.0.0.1:${echo.port}" ${created.publicKey}`,
    );
    expect(created.publicKey).toMatch(/^ssh-ed25519 /);

    const installedAt = Date.now();
    await install(created.authorizedKeysLine);
    const up = await stack.waitForTunnel(created.id, isUp, 15_000, () => bastion.output());
    const upMs = Date.now() - installedAt;
    expect(up.status.error).toBeUndefined();
    expect(up.connect?.host).toBe('127.0.0.1');
    expect(up.connect?.port).toBeGreaterThanOrEqual(26000);
    expect(up.connect?.port).toBeLessThanOrEqual(26999);

    const connect = up.connect;
    if (!connect) throw new Error('up without connect');
    const held = await holdEchoConnection(connect.host, connect.port);

    // Pinned on the first success: GET shows the bastion's own fingerprint.
    const pinned = await stack.waitForTunnel(created.id, (t) => !!t.ssh?.hostKeyFingerprint, 5_000);
    expect(pinned.ssh?.hostKeyFingerprint).toBe(bastion.hostKeyFingerprint());
    expect(await keyInUse(created.id)).toBe(created.publicKeyFingerprint);
    expect(pinned.status.keyFingerprint).toBe(created.publicKeyFingerprint);
    // Once the pool has polled past the pin (it claims a tunnel created after it in that same poll),
    // the session that was pinned still carries the connection opened before.
    const sentinel = await createStandard(stack.api, { ssh: target(), service: echoService() });
    await stack.waitForLog((l) => l.msg === 'standard tunnel claimed' && l.tunnelId === sentinel.id, 5_000);
    expect(await held.echo(5_000)).toBe(true);
    held.close();
    expect((await stack.api('DELETE', `/v1/tunnels/${sentinel.id}`)).status).toBe(204);
    expect(stack.logsWith({ msg: 'standard tunnel up', tunnelId: created.id })).toHaveLength(1);

    const trip = await echoRoundTrip(connect.host, connect.port, 64 * MiB, 90_000);
    expect(trip.sentBytes).toBe(64 * MiB);
    expect(trip.receivedBytes).toBe(64 * MiB);
    expect(trip.receivedSha256).toBe(trip.sentSha256);
    // One SSH session carries the connections: the bastion saw one login for this tunnel.
    expect(bastion.sessionCount()).toBe(1);
    expect((await stack.getTunnel(created.id)).status.state).toBe('up');
    console.info(
      `figure: standard up ${upMs} ms after authorizedKeysLine was installed; 64 MiB echoed in ` +
        `${Math.round(trip.ms)} ms (${((2 * 64) / (trip.ms / 1000)).toFixed(0)} MiB/s both directions together)`,
    );
  });

  it("reaches a real PostgreSQL behind the bastion with Debian's psql", async () => {
    const postgres: Postgres = await startPostgres();
    cleanups.add(() => postgres.stop());
    const service = { host: '127.0.0.1', port: postgres.port };
    const created = await createStandard(stack.api, { ssh: target(), service });
    expect(created.authorizedKeysLine).toContain(`permitopen="127.0.0.1:${postgres.port}"`);
    await install(created.authorizedKeysLine);
    const up = await stack.waitForTunnel(created.id, isUp, 15_000, () => bastion.output());
    if (!up.connect) throw new Error('up without connect');

    const query =
      "select 'via-bastion', inet_server_port(), count(*), sum(i) from generate_series(1, 100000) as i";
    const result = await psql(up.connect.host, up.connect.port, query);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    // inet_server_port() is the port PostgreSQL itself listens on: the query crossed the bastion.
    expect(result.stdout.trim()).toBe(`via-bastion|${postgres.port}|100000|5000050000`);
  });

  describe('every key type and auth method of the contract connects', () => {
    it.each([
      ['rsa', /^ssh-rsa /, '4096'],
      ['ecdsa', /^ecdsa-sha2-nistp256 /, '256'],
      ['ed25519', /^ssh-ed25519 /, '256'],
    ])('a generated %s key', async (keyType, prefix, bits) => {
      const created = await createStandard(stack.api, {
        ssh: target(),
        service: echoService(),
        auth: { method: 'generated', keyType },
      });
      expect(created.publicKey).toMatch(prefix);
      // ssh-keygen agrees on the key's size and fingerprint.
      const listed = execFileSync('ssh-keygen', ['-l', '-f', '-'], {
        input: created.publicKey,
        encoding: 'utf8',
      });
      expect(listed.split(' ').slice(0, 2)).toEqual([bits, created.publicKeyFingerprint]);

      await install(created.authorizedKeysLine);
      const up = await stack.waitForTunnel(created.id, isUp, 15_000, () => bastion.output());
      if (!up.connect) throw new Error('up without connect');
      expect(await echoProbe(up.connect.host, up.connect.port, 5_000)).toBe(true);
      expect(await keyInUse(created.id)).toBe(created.publicKeyFingerprint);
    });

    it.each([['ed25519'], ['rsa']])(
      "a customer's own %s private key with a passphrase, made by ssh-keygen",
      async (type) => {
        const dir = await mkdtemp(join(tmpdir(), 'tk-custkey-'));
        cleanups.add(() => rm(dir, { recursive: true, force: true }));
        const passphrase = `correct horse ${type} battery`;
        const file = join(dir, 'id');
        execFileSync('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-C', 'ops@customer', '-f', file]);
        const privateKey = await readFile(file, 'utf8');
        const [keyType, keyData] = (await readFile(`${file}.pub`, 'utf8')).split(' ');

        const res = await stack.api('POST', '/v1/tunnels', {
          type: 'standard',
          name: `own-${type}`,
          ssh: target(),
          service: echoService(),
          auth: { method: 'private_key', privateKey, passphrase },
        });
        expect(res.status).toBe(201);
        const text = JSON.stringify(res.json);
        expect(text).not.toContain(passphrase);
        expect(text).not.toContain('PRIVATE KEY');
        // The public half of the customer's key is what goes into authorized_keys.
        expect(res.json.publicKey.split(' ').slice(0, 2)).toEqual([keyType, keyData]);

        await install(res.json.authorizedKeysLine);
        const up = await stack.waitForTunnel(res.json.id, isUp, 15_000, () => bastion.output());
        if (!up.connect) throw new Error('up without connect');
        expect(await echoProbe(up.connect.host, up.connect.port, 5_000)).toBe(true);
        expect(await keyInUse(res.json.id)).toBe(res.json.publicKeyFingerprint);
      },
    );

    it('a password, on a bastion that allows password logins and knows none of our keys', async () => {
      const password = 'bastion-Pa55word!';
      const withPassword = await Bastion.start({ password });
      cleanups.add(() => withPassword.dispose());
      const res = await stack.api('POST', '/v1/tunnels', {
        type: 'standard',
        name: 'by-password',
        ssh: target(withPassword),
        service: echoService(),
        auth: { method: 'password', password },
      });
      expect(res.status).toBe(201);
      expect(JSON.stringify(res.json)).not.toContain(password);

      const up = await stack.waitForTunnel(res.json.id, isUp, 15_000, () => withPassword.output());
      if (!up.connect) throw new Error('up without connect');
      expect(await echoProbe(up.connect.host, up.connect.port, 5_000)).toBe(true);
      expect(await keyInUse(res.json.id)).toBe('password');
      expect(withPassword.output()).toMatch(/Accepted password for /);
    });
  });

  it('takes its own pin when the pool brings it after the session ended, without reconnecting for it', async () => {
    const leaving = await Bastion.start();
    cleanups.add(() => leaving.dispose());
    const created = await createStandard(stack.api, { ssh: target(leaving), service: echoService() });
    await leaving.setAuthorizedKeys([created.authorizedKeysLine]);
    await stack.waitForTunnel(created.id, isUp, 15_000, () => leaving.output());
    // Within milliseconds of the pin, before the pool's next poll (500 ms) brings the pinned record,
    // the bastion goes away: the record arrives while the tunnel is between sessions.
    await stack.waitForLog((l) => l.msg === 'bastion host key pinned' && l.tunnelId === created.id, 5_000);
    await leaving.stop();
    execFileSync('pkill', ['-KILL', '-u', leaving.user]);
    await stack.waitForLog(
      (l) => l.msg === 'standard tunnel reconnect scheduled' && l.tunnelId === created.id,
      5_000,
    );
    const sentinel = await createStandard(stack.api, { ssh: target(), service: echoService() });
    await stack.waitForLog((l) => l.msg === 'standard tunnel claimed' && l.tunnelId === sentinel.id, 5_000);
    expect((await stack.api('DELETE', `/v1/tunnels/${sentinel.id}`)).status).toBe(204);

    await leaving.restart();
    const sessionsUp = () => stack.logsWith({ msg: 'standard tunnel up', tunnelId: created.id }).length;
    await waitFor(() => sessionsUp() === 2, RECONNECT_MAX_MS + 3_000, { what: 'the tunnel up again' });
    // Our own pin is no configuration change: the session that comes back is not dropped for it.
    expect(
      stack.logsWith({ msg: 'standard tunnel configuration changed; reconnecting', tunnelId: created.id }),
    ).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // two more polls
    expect(sessionsUp()).toBe(2);
  });

  it('comes back by itself after the bastion reboots, within the backoff cap, and carries new connections', async () => {
    const rebooting = await Bastion.start();
    cleanups.add(() => rebooting.dispose());
    const created = await createStandard(stack.api, { ssh: target(rebooting), service: echoService() });
    await rebooting.setAuthorizedKeys([created.authorizedKeysLine]);
    const before = await stack.waitForTunnel(created.id, isUp, 15_000, () => rebooting.output());
    if (!before.connect) throw new Error('up without connect');
    const logsBefore = stack.logs.length;

    const rebootStarted = Date.now();
    // sshd stops, its sessions die with it, and it starts again on the same port and host key.
    await rebooting.restart({ dropSessions: true });
    const listeningAgain = Date.now();

    const after = await stack.waitForTunnel(
      created.id,
      (t) => isUp(t) && Date.parse(t.status.since) >= rebootStarted,
      RECONNECT_MAX_MS + 3_000,
      () => rebooting.output(),
    );
    const recoveredMs = Date.now() - listeningAgain;
    // The session's end was seen and classified, and the pool retried without being asked.
    const ended = stack.logs
      .slice(logsBefore)
      .find((l) => l.msg === 'standard tunnel session ended' && l.tunnelId === created.id);
    expect(ended?.code).toBe('connection_lost');
    const retries = stack.logs
      .slice(logsBefore)
      .filter((l) => l.msg === 'standard tunnel reconnect scheduled' && l.tunnelId === created.id)
      .map((l) => Number(l.delayMs));
    expect(retries.length).toBeGreaterThan(0);
    for (const delay of retries) expect(delay).toBeLessThanOrEqual(RECONNECT_MAX_MS);

    expect(after.connect).toEqual(before.connect);
    expect(rebooting.sessionCount()).toBe(1);
    const trip = await echoRoundTrip(after.connect?.host ?? '', after.connect?.port ?? 0, 4 * MiB, 30_000);
    expect(trip.receivedSha256).toBe(trip.sentSha256);
    expect(await echoProbe(after.connect?.host ?? '', after.connect?.port ?? 0, 5_000)).toBe(true);
    console.info(
      `figure: standard tunnel up again ${recoveredMs} ms after the rebooted bastion listened ` +
        `(reboot took ${listeningAgain - rebootStarted} ms; delays ${retries.join(', ')} ms)`,
    );
  });
});

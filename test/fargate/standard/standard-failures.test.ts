/**
 * Standard tunnels that cannot work (issue 4, acceptance 3): each failure a customer can cause on
 * a real OpenSSH bastion shows through the API as its own `status.error.code`, with the specifics in
 * the message and a hint that says what to fix. Nothing crashes, and the pool keeps retrying with
 * backoff whose spacing grows up to RECONNECT_MAX_MS, as its debug log shows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../local/free-port';
import { generateKeyPair } from '../../../shared/keys';
import type { Tunnel } from '../../../shared/schemas';
import { Bastion } from '../../helpers/bastion';
import { Cleanups } from '../../helpers/cleanups';
import { requireTools } from '../../helpers/customer';
import { type EchoServer, echoProbe } from '../../helpers/echo';
import type { TestStack } from '../../helpers/gateway-stack';
import {
  createStandard,
  expectGrowingCappedBackoff,
  isDownWith,
  isUp,
  scheduledReconnects,
  startStandardWorld,
} from '../../helpers/standard';
import { waitFor } from '../../helpers/wait-for';

const RECONNECT_INITIAL_MS = 100;
const RECONNECT_MAX_MS = 1_000;
/** Enough reconnects to see the delay double from RECONNECT_INITIAL_MS up to the cap and stay there. */
const RECONNECTS_TO_SEE = 7;

describe('standard tunnel failures, each with its own code and hint', () => {
  let stack: TestStack;
  /** A default bastion: several scenarios share it, each with its own key (or none) installed. */
  let bastion: Bastion;
  let echo: EchoServer;
  const installed: string[] = [];
  /** Every tunnel made to fail, with the code it must keep showing until the test fixes it. */
  const failing: { tunnel: Tunnel; code: string }[] = [];
  /** Tunnels up despite their scenario (a warning, not a failure). */
  const notFailing: Tunnel[] = [];
  const cleanups = new Cleanups();

  beforeAll(async () => {
    requireTools('ssh-keygen', 'pkill', 'pgrep', 'useradd', 'userdel');
    ({ stack, bastion, echo } = await startStandardWorld(cleanups, {
      portRange: '27000-27999',
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
  const install = async (...lines: string[]) => {
    installed.push(...lines);
    await bastion.setAuthorizedKeys(installed);
  };

  /** Waits for `code` through the API and checks the error names the specifics and gives a hint. */
  async function expectFailure(
    tunnel: Tunnel,
    code: string,
    message: (string | RegExp)[],
    hint: RegExp,
    diagnose: () => string = () => bastion.output(),
  ): Promise<Tunnel> {
    const down = await stack.waitForTunnel(tunnel.id, isDownWith(code), 15_000, diagnose);
    expect(down.connect).toBeNull();
    const error = down.status.error;
    if (!error) throw new Error('down without an error');
    for (const part of message) expect(error.message).toMatch(part);
    expect(error.hint).toMatch(hint);
    failing.push({ tunnel, code });
    return down;
  }

  it("wrong key: the bastion's authorized_keys lacks ours → auth_failed", async () => {
    const created = await createStandard(stack.api, { ssh: target(), service: echoService() });
    await install((await generateKeyPair('ed25519', 'someone-else')).publicKey);
    await expectFailure(
      created,
      'auth_failed',
      [bastion.user, bastion.target, /publickey/],
      /authorizedKeysLine.*authorized_keys/,
    );
  });

  it('wrong user → auth_failed naming that user', async () => {
    const created = await createStandard(stack.api, {
      ssh: { ...target(), user: 'nobody-here' },
      service: echoService(),
    });
    await install(created.authorizedKeysLine);
    await expectFailure(created, 'auth_failed', ['nobody-here', bastion.target], /ssh\.user/);
  });

  it('bastion not listening → ssh_refused', async () => {
    const port = await freePort();
    const created = await createStandard(stack.api, {
      ssh: { host: '127.0.0.1', port, user: 'ops' },
      service: echoService(),
    });
    await expectFailure(created, 'ssh_refused', [`127.0.0.1:${port}`], /sshd runs.*ssh\.port/);
  });

  it('bastion host key changed after pinning → host_key_mismatch with both fingerprints; fixed by a new pin', async () => {
    const rebuilt = await Bastion.start();
    cleanups.add(() => rebuilt.dispose());
    const created = await createStandard(stack.api, { ssh: target(rebuilt), service: echoService() });
    await rebuilt.setAuthorizedKeys([created.authorizedKeysLine]);
    const oldKey = rebuilt.hostKeyFingerprint();
    await stack.waitForTunnel(
      created.id,
      (t) => isUp(t) && t.ssh?.hostKeyFingerprint === oldKey,
      15_000,
      () => rebuilt.output(),
    );

    // The bastion is rebuilt: a new host key, and the old session is gone with the old machine.
    await rebuilt.regenerateHostKey({ dropSessions: true });
    const newKey = rebuilt.hostKeyFingerprint();
    expect(newKey).not.toBe(oldKey);
    await expectFailure(
      created,
      'host_key_mismatch',
      [oldKey, newKey, rebuilt.target],
      /ssh\.hostKeyFingerprint/,
      () => rebuilt.output(),
    );
    // Never silently accepted: the pin stays, and no session was opened with the new key.
    expect((await stack.getTunnel(created.id)).ssh?.hostKeyFingerprint).toBe(oldKey);
    expect(rebuilt.sessionCount()).toBe(0);

    // The customer approves the new key as the hint says; the tunnel comes up without waiting.
    await waitForEnoughReconnects(created.id); // (let the backoff show first: the last test reads it)
    const patched = await stack.api('PATCH', `/v1/tunnels/${created.id}`, {
      ssh: { hostKeyFingerprint: newKey },
    });
    expect(patched.status).toBe(200);
    await stack.waitForTunnel(created.id, isUp, RECONNECT_MAX_MS + 5_000, () => rebuilt.output());
    failing.splice(
      failing.findIndex((f) => f.tunnel.id === created.id),
      1,
    );
  });

  it('AllowTcpForwarding no on the bastion → forward_denied', async () => {
    const locked = await Bastion.start({ config: ['AllowTcpForwarding no'] });
    cleanups.add(() => locked.dispose());
    const created = await createStandard(stack.api, { ssh: target(locked), service: echoService() });
    await locked.setAuthorizedKeys([created.authorizedKeysLine]);
    await expectFailure(
      created,
      'forward_denied',
      [locked.target, `127.0.0.1:${echo.port}`],
      /AllowTcpForwarding yes/,
      () => locked.output(),
    );
  });

  it('permitopen naming another port → forward_denied', async () => {
    const created = await createStandard(stack.api, { ssh: target(), service: echoService() });
    const elsewhere = echo.port === 1 ? 2 : echo.port - 1;
    await install(`restrict,port-forwarding,permitopen="127.0.0.1:${elsewhere}" ${created.publicKey}`);
    await expectFailure(
      created,
      'forward_denied',
      [bastion.target, `127.0.0.1:${echo.port}`],
      new RegExp(`permitopen.*127\\.0\\.0\\.1:${echo.port}`),
    );
  });

  it('service port closed behind the bastion → up (the session works), with a service_unreachable warning', async () => {
    const closed = await freePort();
    const created = await createStandard(stack.api, {
      ssh: target(),
      service: { host: '127.0.0.1', port: closed },
    });
    await install(created.authorizedKeysLine);
    // Issue 13: the state follows the SSH session; the service's reachability is a warning, the
    // same whether the service was absent at connect time or died under an up tunnel.
    const warned = (t: Tunnel) => isUp(t) && t.status.warnings?.some((w) => w.code === 'service_unreachable');
    const up = await stack.waitForTunnel(
      created.id,
      (t) => warned(t) === true,
      15_000,
      () => bastion.output(),
    );
    expect(up.status.error).toBeUndefined();
    const warning = up.status.warnings?.find((w) => w.code === 'service_unreachable');
    expect(warning?.message).toContain(bastion.target);
    expect(warning?.message).toContain(`127.0.0.1:${closed}`);
    expect(warning?.hint).toMatch(/service listens/);
    notFailing.push(created);
  });

  async function waitForEnoughReconnects(tunnelId: string): Promise<void> {
    await waitFor(() => scheduledReconnects(stack.logs, tunnelId).length >= RECONNECTS_TO_SEE, 20_000, {
      what: `${RECONNECTS_TO_SEE} reconnects of ${tunnelId}`,
    });
  }

  it('nothing crashed: every failing tunnel kept its code and kept retrying with growing, capped delays', async () => {
    expect(failing.map((f) => f.code).sort()).toEqual([
      'auth_failed',
      'auth_failed',
      'forward_denied',
      'forward_denied',
      'ssh_refused',
    ]);
    for (const { tunnel, code } of failing) {
      await waitForEnoughReconnects(tunnel.id);
      expect((await stack.getTunnel(tunnel.id)).status.error?.code).toBe(code);
      const reconnects = scheduledReconnects(stack.logs, tunnel.id);
      expectGrowingCappedBackoff(reconnects, { initialMs: RECONNECT_INITIAL_MS, maxMs: RECONNECT_MAX_MS });
    }
    const rebuilt = stack.logs.filter(
      (l) =>
        l.msg === 'standard tunnel reconnect scheduled' && !failing.some((f) => f.tunnel.id === l.tunnelId),
    );
    expect(rebuilt.length).toBeGreaterThan(0); // the host-key tunnel retried too, before its new pin

    // Down states are written when the reason changes, not per retry.
    const written: string[] = [];
    for (const { tunnel } of failing) {
      const codes = stack
        .logsWith({ msg: 'tunnel state written', tunnelId: tunnel.id, state: 'down' })
        .map((l) => String(l.code));
      expect(codes.length).toBeLessThan(scheduledReconnects(stack.logs, tunnel.id).length / 2);
      for (let i = 1; i < codes.length; i++) expect(codes[i], codes.join(' → ')).not.toBe(codes[i - 1]);
      written.push(codes.join(' → '));
    }
    expect(stack.logs.filter((l) => l.level === 'error')).toEqual([]);
    expect(stack.gateway.standardTunnelCount).toBe(failing.length + 1 + notFailing.length);
    expect((await fetch(`${stack.baseUrl}/healthz`)).status).toBe(200);
    console.info(
      `figure: reconnect delays (ms) with RECONNECT_INITIAL_MS=${RECONNECT_INITIAL_MS}, RECONNECT_MAX_MS=${RECONNECT_MAX_MS}: ` +
        failing
          .map(
            ({ code, tunnel }) =>
              `${code} ${scheduledReconnects(stack.logs, tunnel.id)
                .slice(0, 8)
                .map((r) => r.delayMs)
                .join('/')}`,
          )
          .join('; ') +
        `; down states written: ${written.join('; ')}`,
    );
  });

  it('a failing tunnel recovers by itself once the customer fixes the cause, within the backoff cap', async () => {
    const wrongKey = failing.find((f) => f.code === 'auth_failed' && f.tunnel.ssh?.user === bastion.user);
    if (!wrongKey) throw new Error('no wrong-key tunnel');
    const fixedAt = Date.now();
    await install(wrongKey.tunnel.authorizedKeysLine ?? '');
    const up = await stack.waitForTunnel(wrongKey.tunnel.id, isUp, RECONNECT_MAX_MS + 5_000, () =>
      bastion.output(),
    );
    const recoveredMs = Date.now() - fixedAt;
    if (!up.connect) throw new Error('up without connect');
    expect(await echoProbe(up.connect.host, up.connect.port, 5_000)).toBe(true);
    console.info(`figure: wrong-key tunnel up ${recoveredMs} ms after its key was installed`);
  });
});

/**
 * Zero-downtime key rotation of a standard tunnel (issue 4, acceptance 6): after `rotate-key` the
 * pool keeps serving on the old key, moves to the new one once the customer has installed it, and
 * retires the old one; the customer then removes the old key. Throughout, the API never shows the
 * tunnel `down` and a loop of connections through `connect` sees no failure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createDynamoClients } from '../../../shared/store/dynamo-client';
import type { Bastion } from '../../helpers/bastion';
import { Cleanups } from '../../helpers/cleanups';
import { requireTools } from '../../helpers/customer';
import { type EchoServer, echoRoundTrip } from '../../helpers/echo';
import type { TestStack } from '../../helpers/gateway-stack';
import {
  createStandard,
  gatewayItems,
  isUp,
  requireWellFormedKey,
  startStandardWorld,
} from '../../helpers/standard';
import { waitFor } from '../../helpers/wait-for';

const HEARTBEAT_INTERVAL_MS = 1_000;

describe('standard tunnel key rotation', () => {
  let stack: TestStack;
  let bastion: Bastion;
  let echo: EchoServer;
  let dynamo: ReturnType<typeof createDynamoClients>;
  const cleanups = new Cleanups();

  beforeAll(async () => {
    requireTools('ssh-keygen', 'pkill', 'pgrep', 'useradd', 'userdel');
    ({ stack, bastion, echo, dynamo } = await startStandardWorld(cleanups, {
      portRange: '28500-28999',
      // The pool tries a rotation's new key every max(1 s, heartbeat).
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      env: { RECONNECT_INITIAL_MS: '100', RECONNECT_MAX_MS: '1000', POOL_POLL_INTERVAL_MS: '500' },
    }));
  });

  afterAll(() => cleanups.runAll());

  const keyInUse = async (id: string) =>
    (await gatewayItems(dynamo.doc, stack.tableName, [id])).get(id)?.state?.keyFingerprint;

  it('moves to the new key and retires the old one without ever showing down or failing a connection', async () => {
    const created = await createStandard(stack.api, {
      ssh: { host: '127.0.0.1', port: bastion.port, user: bastion.user },
      service: { host: '127.0.0.1', port: echo.port },
    });
    await bastion.setAuthorizedKeys([created.authorizedKeysLine]);
    const up = await stack.waitForTunnel(created.id, isUp, 15_000, () => bastion.output());
    const connect = up.connect;
    if (!connect) throw new Error('up without connect');
    expect(await keyInUse(created.id)).toBe(created.publicKeyFingerprint);

    // What a dashboard sees, and what a workload does, the whole time.
    const states = new Map<string, number>();
    /** Which key the status said the session uses, each change once. */
    const keysShown: string[] = [];
    const failures: string[] = [];
    let connections = 0;
    let running = true;
    const watchStatus = (async () => {
      while (running) {
        const res = await stack.api('GET', `/v1/tunnels/${created.id}/status`);
        const state = res.status === 200 ? String(res.json.state) : `http ${res.status}`;
        states.set(state, (states.get(state) ?? 0) + 1);
        const key = String(res.json?.keyFingerprint);
        if (keysShown.at(-1) !== key) keysShown.push(key);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const useTunnel = (async () => {
      while (running) {
        try {
          const trip = await echoRoundTrip(connect.host, connect.port, 64 * 1024, 10_000);
          if (trip.receivedSha256 !== trip.sentSha256) failures.push('echo mismatch');
          connections++;
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    })();
    const loopsDone = Promise.all([watchStatus, useTunnel]);
    const connectionsNow = () => connections;
    const moreConnections = (n: number) => {
      const target = connectionsNow() + n;
      return waitFor(() => connections >= target, 15_000, { what: `${n} more connections` });
    };

    let next: typeof created | undefined;
    try {
      await moreConnections(5);
      const rotated = await stack.api('POST', `/v1/tunnels/${created.id}/rotate-key`, {});
      expect(rotated.status).toBe(200);
      next = rotated.json as typeof created;
      requireWellFormedKey(next.publicKey);
      expect(next.publicKeyFingerprint).not.toBe(created.publicKeyFingerprint);
      expect(next.authorizedKeysLine).toBe(
        `no-agent-forwarding,no-X11-forwarding,no-pty,command="echo this key only opens a forward to its tunnel service; exit 1",permitopen="127.0.0.1:${echo.port}" ${next.publicKey}`,
      );

      const rotatedTo = next.publicKeyFingerprint;
      // Before the customer installs it, the new key is tried and refused; the old one keeps serving.
      const newKeyRefused = `Failed publickey for ${bastion.user} from 127.0.0.1`;
      await waitFor(
        () => bastion.output().includes(newKeyRefused) && bastion.output().includes(rotatedTo),
        10_000,
        { what: 'the pool trying the new key' },
      );
      expect(await keyInUse(created.id)).toBe(created.publicKeyFingerprint);
      await moreConnections(5);

      // The customer adds the new key next to the old one; the pool switches to it.
      await bastion.setAuthorizedKeys([created.authorizedKeysLine, next.authorizedKeysLine]);
      const installedAt = Date.now();
      await waitFor(async () => (await keyInUse(created.id)) === rotatedTo, 10_000, {
        what: 'the session on the new key',
      });
      const switchedMs = Date.now() - installedAt;
      await stack.waitForLog(
        (l) => l.msg === 'previous tunnel key retired' && l.tunnelId === created.id,
        5_000,
      );
      await moreConnections(5);

      // The customer removes the old key; the old session drains and closes, the new one serves.
      await bastion.setAuthorizedKeys([next.authorizedKeysLine]);
      await waitFor(() => bastion.sessionCount() === 1, 10_000, { what: 'the old session closed' });
      await moreConnections(10);
      console.info(
        `figure: rotation switched to the new key ${switchedMs} ms after it was installed; ` +
          `${connections} connections through the tunnel meanwhile, status seen ${JSON.stringify(Object.fromEntries(states))}`,
      );
    } finally {
      running = false;
      await loopsDone;
    }
    expect(failures).toEqual([]);
    expect([...states.keys()]).toEqual(['up']);
    // The status told the customer when the new key took over.
    expect(keysShown).toEqual([created.publicKeyFingerprint, next?.publicKeyFingerprint]);
    expect(connections).toBeGreaterThanOrEqual(25);
    if (!next) throw new Error('no rotation');

    // The old key is gone for good: a fresh session after a bastion reboot logs in with the new one.
    const retired = await stack.getTunnel(created.id);
    expect(retired.publicKeyFingerprint).toBe(next.publicKeyFingerprint);
    const rebootAt = Date.now();
    await bastion.restart({ dropSessions: true });
    await stack.waitForTunnel(
      created.id,
      (t) => isUp(t) && Date.parse(t.status.since) >= rebootAt,
      10_000,
      () => bastion.output(),
    );
    expect(await keyInUse(created.id)).toBe(next.publicKeyFingerprint);
  });
});

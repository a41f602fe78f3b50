/**
 * Issue 18, Secrets Manager at scale: a standard tunnel's credentials are read from the secret store
 * once, not at every reconnect; a rotation costs the gateway exactly one more read (and the API its
 * own one, uncached), the gateway retiring the old key none; a key the store has but the record does
 * not show yet is read again when the bastion refuses the cached one. On the stack of `npm start`
 * (its real file secret store, whose reads are counted by a spy that calls through), a real OpenSSH
 * bastion dropping the tunnel's session to force each reconnect. One tunnel, one stack.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, type MockInstance, vi } from 'vitest';
import { authorizedKeysLine, generateKeyPair } from '../../../shared/keys';
import { FileSecretStore } from '../../../shared/secrets/file-secret-store';
import type { Bastion } from '../../helpers/bastion';
import { Cleanups } from '../../helpers/cleanups';
import { requireTools } from '../../helpers/customer';
import type { EchoServer } from '../../helpers/echo';
import type { TestStack } from '../../helpers/gateway-stack';
import { parsePrometheusText, seriesValue } from '../../helpers/prometheus-text';
import { createStandard, gatewayItems, isUp, startStandardWorld } from '../../helpers/standard';
import { waitFor } from '../../helpers/wait-for';

describe("a standard tunnel's secret reads", () => {
  let stack: TestStack;
  let bastion: Bastion;
  let echo: EchoServer;
  let dynamo: Awaited<ReturnType<typeof startStandardWorld>>['dynamo'];
  let storeGets: MockInstance<(name: string) => Promise<string>>;
  const cleanups = new Cleanups();

  beforeAll(async () => {
    requireTools('ssh-keygen', 'pkill', 'pgrep', 'useradd', 'userdel');
    storeGets = vi.spyOn(FileSecretStore.prototype, 'get');
    cleanups.add(async () => storeGets.mockRestore());
    ({ stack, bastion, echo, dynamo } = await startStandardWorld(cleanups, {
      portRange: '17100-17119',
      heartbeatIntervalMs: 1_000,
      env: { RECONNECT_INITIAL_MS: '100', RECONNECT_MAX_MS: '500', POOL_POLL_INTERVAL_MS: '500' },
    }));
  });

  afterAll(() => cleanups.runAll());

  /** Reads of the tunnel's secret from the store, by the API and the gateway. */
  const reads = (id: string) => storeGets.mock.calls.filter(([name]) => name === `tunnels/${id}`).length;
  const sessionsUp = (id: string) => stack.logsWith({ msg: 'standard tunnel up', tunnelId: id }).length;
  /** Waits for the tunnel's state to say it is up on `fingerprint` (the state is written after the log line). */
  const upOnKey = (id: string, fingerprint: string) =>
    waitFor(
      async () => {
        const state = (await gatewayItems(dynamo.doc, stack.tableName, [id])).get(id)?.state;
        return state?.state === 'up' && state.keyFingerprint === fingerprint;
      },
      10_000,
      { what: `tunnel ${id} up on ${fingerprint}` },
    );
  const secretReads = async () => {
    const families = await parsePrometheusText(await stack.gateway.metrics.text());
    return {
      hit: seriesValue(families, 'tunnelkeeper_secret_reads_total', { result: 'hit' }),
      miss: seriesValue(families, 'tunnelkeeper_secret_reads_total', { result: 'miss' }),
    };
  };

  /** Ends the tunnel's bastion session `times` times, each time waiting for its next one. */
  async function reconnect(id: string, times: number): Promise<void> {
    for (let i = 0; i < times; i++) {
      const before = sessionsUp(id);
      const started = Date.now();
      // The session's processes on the bastion die (sshd keeps listening): our side sees the connection end.
      execFileSync('pkill', ['-KILL', '-u', bastion.user]);
      await waitFor(() => sessionsUp(id) > before, 10_000, {
        what: `tunnel ${id} up again after its session was dropped (${i + 1}): ${bastion.output().slice(-500)}`,
      });
      console.info(`figure: session dropped to the tunnel's next session: ${Date.now() - started} ms`);
    }
  }

  /** A standard tunnel through the bastion to the echo service, its key installed, up. */
  async function standardUp() {
    const created = await createStandard(stack.api, {
      ssh: { host: '127.0.0.1', port: bastion.port, user: bastion.user },
      service: { host: '127.0.0.1', port: echo.port },
    });
    await bastion.setAuthorizedKeys([created.authorizedKeysLine]);
    await stack.waitForTunnel(created.id, isUp, 15_000, () => bastion.output());
    return created;
  }

  it('reads once per key, however often the tunnel reconnects; a rotation reads once more', async () => {
    const created = await standardUp();
    expect(reads(created.id)).toBe(1);

    await reconnect(created.id, 3);
    const test = await stack.api('POST', `/v1/tunnels/${created.id}/test`);
    expect(test.json.ok).toBe(true);
    expect(reads(created.id)).toBe(1);

    // The API builds the new secret on the stored one (a read of its own, never cached); the gateway
    // sees the record's new key and reads once, then serves on the old key while trying the new.
    const rotated = await stack.api('POST', `/v1/tunnels/${created.id}/rotate-key`, {});
    expect(rotated.status).toBe(200);
    const next: { publicKeyFingerprint: string; authorizedKeysLine: string } = rotated.json;
    await stack.waitForLog(
      (l) =>
        l.msg === 'serving on the previous key; trying the new one periodically' &&
        l.tunnelId === created.id &&
        l.newKey === next.publicKeyFingerprint,
      10_000,
    );
    expect(reads(created.id)).toBe(3);
    await reconnect(created.id, 1);
    expect(reads(created.id)).toBe(3);
    await upOnKey(created.id, created.publicKeyFingerprint);

    // The customer installs the new key: the gateway switches, retires the old key (its own write,
    // kept in memory) and reconnects without reading.
    await bastion.setAuthorizedKeys([created.authorizedKeysLine, next.authorizedKeysLine]);
    await stack.waitForLog(
      (l) => l.msg === 'previous tunnel key retired' && l.tunnelId === created.id,
      10_000,
    );
    await reconnect(created.id, 1);
    await upOnKey(created.id, next.publicKeyFingerprint);
    expect(reads(created.id)).toBe(3);

    const counted = await secretReads();
    expect(counted.miss).toBe(2); // the gateway's reads; the API's is not through its cache
    expect(counted.hit).toBeGreaterThanOrEqual(6); // one per reconnect and test at least (retries add more)
    console.info(
      `figure: 5 reconnects, a test and a rotation of one standard tunnel: ${reads(created.id)} secret ` +
        `store reads (gateway: ${counted.miss} misses, ${counted.hit} hits)`,
    );

    // Deleted: the gateway stops serving it (and drops its keys); its bastion changes no longer matter.
    expect((await stack.api('DELETE', `/v1/tunnels/${created.id}`)).status).toBe(204);
    await stack.waitForLog((l) => l.msg === 'standard tunnel released' && l.tunnelId === created.id, 10_000);
    // Reconnects take 0.3-2.5 s each on this busy 2-core machine (figures above).
  }, 60_000);

  it('reads again when the bastion refuses the cached key and the store holds another', async () => {
    const created = await standardUp();
    await reconnect(created.id, 1); // the session after this one reads from memory
    expect(reads(created.id)).toBe(1);

    // Written behind the record's back (an operator's repair; a store ahead of the record), and the
    // bastion now takes only that key: the cached one is refused, read again, and the new one works.
    const store = storeGets.mock.contexts.find((context) => context instanceof FileSecretStore);
    if (!store) throw new Error('the stack read no secret through a FileSecretStore');
    const replacement = await generateKeyPair('ed25519', 'operator-repair');
    await store.put(
      `tunnels/${created.id}`,
      JSON.stringify({
        keys: [
          {
            privateKey: replacement.privateKey,
            publicKey: replacement.publicKey,
            fingerprint: replacement.fingerprint,
          },
        ],
      }),
    );
    await bastion.setAuthorizedKeys([authorizedKeysLine(replacement.publicKey, created.service)]);
    await reconnect(created.id, 1);
    await upOnKey(created.id, replacement.fingerprint);
    expect(
      stack.logsWith({
        msg: 'standard tunnel credentials changed since cached; connecting with the stored ones',
        tunnelId: created.id,
      }),
    ).toHaveLength(1);
    expect(stack.logs.some((l) => l.tunnelId === created.id && l.code === 'auth_failed')).toBe(false);
    expect(reads(created.id)).toBe(2);
    // Values never reach the log.
    const keyLine = replacement.privateKey.split('\n')[1] ?? replacement.privateKey;
    expect(JSON.stringify(stack.logs)).not.toContain(keyLine);
  });
});

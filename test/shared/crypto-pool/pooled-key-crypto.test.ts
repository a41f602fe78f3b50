/**
 * KeyCrypto on the real key crypto worker (crypto-worker.mjs through tsx, as npm start runs it):
 * the same answers and the same 422s as shared/keys.ts inline, with the key derivation off the
 * event loop, and only the heavy calls sent to the worker.
 */
import { readdir, readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEnv } from '../../../shared/config';
import {
  createKeyCrypto,
  type KeyCryptoService,
  keyCryptoSettingsFrom,
  startKeyCrypto,
} from '../../../shared/crypto-pool/pooled-key-crypto';
import { ValidationError } from '../../../shared/errors';
import { inlineKeyCrypto } from '../../../shared/key-crypto';
import { MAX_BCRYPT_ROUNDS, parsePrivateKey } from '../../../shared/keys';
import { createLogger, silentLogger } from '../../../shared/logger';
import { requireTools } from '../../helpers/customer';
import { keygen } from '../../helpers/keygen';
import { measureLoopBusy } from '../../helpers/loop-busy';

const { utils } = ssh2;
const PASSPHRASE = 'open sesame, 64 times';

const SCHED_IDLE = 5;

/** Each thread of a process with its nice value and scheduling policy, from /proc. */
async function schedulingOfThreads(pid: number): Promise<{ tid: number; nice: number; policy: number }[]> {
  const threads = [];
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after the command name start at stat(5)'s third: nice is its 19th, policy its 41st.
    threads.push({ tid: Number(tid), nice: Number(fields[16]), policy: Number(fields[38]) });
  }
  return threads;
}

async function failureOf(promise: Promise<unknown>): Promise<ValidationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ValidationError)) throw new Error(`expected a ValidationError, got ${String(err)}`);
  return err;
}

/** How long the event loop may be busy at a stretch while a key is derived on the pool. */
const LOOP_BUSY_BOUND_MS = 100;

describe('the key crypto pool', () => {
  let crypto: KeyCryptoService;
  let key64: { privateKey: string; publicKey: string };
  let key16: { privateKey: string; publicKey: string };
  let tooMany: { privateKey: string; publicKey: string };
  const logs: { msg: string }[] = [];

  beforeAll(async () => {
    requireTools('ssh-keygen');
    [key64, key16, tooMany, crypto] = await Promise.all([
      keygen({ type: 'ed25519', passphrase: PASSPHRASE, rounds: MAX_BCRYPT_ROUNDS }),
      keygen({ type: 'ecdsa', bits: 384, passphrase: PASSPHRASE, rounds: 16 }),
      keygen({ type: 'ed25519', passphrase: PASSPHRASE, rounds: MAX_BCRYPT_ROUNDS + 1 }),
      startKeyCrypto(
        { workers: 1, maxQueue: 8, taskTimeoutMs: 60_000 },
        createLogger('debug', (line) => logs.push(JSON.parse(line))),
      ),
    ]);
  }, 120_000);

  afterAll(async () => {
    await crypto?.close();
  });

  const completed = () => crypto.stats?.completed ?? Number.NaN;

  it(`derives a ${MAX_BCRYPT_ROUNDS}-round key in its worker while the event loop keeps running`, async () => {
    const before = completed();
    const { value, longestBusyMs, longestStallMs } = await measureLoopBusy(() =>
      crypto.parsePrivateKey(key64.privateKey, PASSPHRASE, 'auth.privateKey'),
    );
    console.info(
      `figure: a 64-round key derivation on the pool: event loop busy at most ${longestBusyMs.toFixed(0)} ms at a stretch, longest timer stall ${longestStallMs.toFixed(0)} ms`,
    );
    expect(longestBusyMs).toBeLessThan(LOOP_BUSY_BOUND_MS); // inline, the same call holds it for ~2 s of CPU
    expect(completed()).toBe(before + 1);
    expect(value.publicKey).toBe(key64.publicKey.split(' ').slice(0, 2).join(' '));
    expect(value).toMatchObject({ type: 'ssh-ed25519', fingerprint: expect.stringMatching(/^SHA256:/) });
  });

  it('runs its worker at the lowest priority, every thread of it (its GC helpers too); this process keeps the default', async () => {
    const [worker] = crypto.stats?.workerPids ?? [];
    if (worker === undefined) throw new Error('no key crypto worker is running');
    const threads = await schedulingOfThreads(worker);
    expect(threads.length).toBeGreaterThan(1); // V8's platform threads, libuv's
    expect(
      threads.filter((t) => t.nice !== 19 || t.policy !== SCHED_IDLE),
      JSON.stringify(threads),
    ).toEqual([]);
    for (const thread of await schedulingOfThreads(process.pid))
      expect(thread, JSON.stringify(thread)).toMatchObject({ nice: 0, policy: 0 });
  });

  it('inline, the same kind of derivation holds the loop: what the measure above would show', async () => {
    const { longestBusyMs } = await measureLoopBusy(() =>
      inlineKeyCrypto.parsePrivateKey(key16.privateKey, PASSPHRASE, 'auth.privateKey'),
    );
    // 16 rounds: 0.2-0.5 s of CPU in one stretch, by machine: the bound above would catch it.
    expect(longestBusyMs).toBeGreaterThan(LOOP_BUSY_BOUND_MS);
  });

  it('answers exactly as parsePrivateKey inline does: the key, and the same 422 issues', async () => {
    const inline = parsePrivateKey(key16.privateKey, PASSPHRASE, 'auth.privateKey');
    await expect(crypto.parsePrivateKey(key16.privateKey, PASSPHRASE, 'auth.privateKey')).resolves.toEqual(
      inline,
    );

    const inlineWrong = await failureOf(
      inlineKeyCrypto.parsePrivateKey(key16.privateKey, 'wrong', 'auth.privateKey'),
    );
    const pooledWrong = await failureOf(crypto.parsePrivateKey(key16.privateKey, 'wrong', 'auth.privateKey'));
    expect(pooledWrong.issues).toEqual(inlineWrong.issues);
    expect(pooledWrong.issues).toEqual([
      { path: 'auth.passphrase', message: 'is wrong: the private key could not be decrypted with it' },
    ]);

    const pooledRounds = await failureOf(
      crypto.parsePrivateKey(tooMany.privateKey, PASSPHRASE, 'auth.privateKey'),
    );
    const inlineRounds = await failureOf(
      inlineKeyCrypto.parsePrivateKey(tooMany.privateKey, PASSPHRASE, 'auth.privateKey'),
    );
    expect(pooledRounds.issues).toEqual(inlineRounds.issues);
    expect(pooledRounds.issues[0]?.message).toMatch(/65 bcrypt KDF rounds/);
  });

  it('keeps what is cheap inline: no passphrase, ed25519 and ECDSA generation', async () => {
    const before = completed();
    const missing = await failureOf(crypto.parsePrivateKey(key16.privateKey, undefined, 'auth.privateKey'));
    expect(missing.issues).toEqual([
      { path: 'auth.passphrase', message: 'is required: the private key is encrypted' },
    ]);
    const plain = await keygen({ type: 'ed25519' });
    await expect(
      crypto.parsePrivateKey(plain.privateKey, undefined, 'auth.privateKey'),
    ).resolves.toMatchObject({
      type: 'ssh-ed25519',
    });
    await crypto.generateKeyPair('ed25519', 'tunnelkeeper-test');
    await crypto.generateKeyPair('ecdsa', 'tunnelkeeper-test');
    expect(completed()).toBe(before);
  });

  it('generates RSA-4096 in its worker; the pair parses back and matches', async () => {
    const before = completed();
    const { value: pair, longestBusyMs } = await measureLoopBusy(() =>
      crypto.generateKeyPair('rsa', 'tunnelkeeper-test'),
    );
    expect(longestBusyMs).toBeLessThan(100);
    expect(completed()).toBe(before + 1);
    const info = parsePrivateKey(pair.privateKey, undefined, 'k');
    expect(info).toMatchObject({ type: 'ssh-rsa', bits: 4096, fingerprint: pair.fingerprint });
    expect(info.publicKey).toBe(pair.publicKey.split(' ').slice(0, 2).join(' '));
    await expect(crypto.generateKeyPair('rsa', 'bad\ncomment')).rejects.toBeInstanceOf(RangeError);
  }, 60_000);

  it('decrypts a stored key for the gateway and signs with it in the worker', async () => {
    const decrypted = await crypto.decryptPrivateKey(key16.privateKey, PASSPHRASE);
    const key = utils.parseKey(decrypted);
    const pub = utils.parseKey(key16.publicKey);
    if (key instanceof Error || Array.isArray(key) || pub instanceof Error || Array.isArray(pub)) {
      throw new Error('unparseable');
    }
    expect(key.getPublicSSH().equals(pub.getPublicSSH())).toBe(true);
    const data = Buffer.from('exchange hash');
    const signature = await crypto.sign(decrypted, data, undefined);
    expect(pub.verify(data, signature)).toBe(true);
    await expect(crypto.decryptPrivateKey(key16.privateKey, 'wrong')).rejects.toMatchObject({
      name: 'KeyDecryptError',
    });
  });
});

describe('starting the key crypto workers', () => {
  const settings = { workers: 1, maxQueue: 4, taskTimeoutMs: 60_000 };
  const missing = new URL('./fixtures/no-such-worker.mjs', import.meta.url);

  it('takes key work before the workers are up, and runs it once they are (npm start loads them late)', async () => {
    const crypto = createKeyCrypto(settings, silentLogger);
    try {
      const pending = crypto.generateKeyPair('rsa', 'queued-before-start');
      await crypto.start();
      await expect(pending).resolves.toMatchObject({ publicKey: expect.stringMatching(/^ssh-rsa /) });
      expect(crypto.stats?.completed).toBe(1);
    } finally {
      await crypto.close();
    }
  }, 60_000);

  it('startKeyCrypto fails when the workers cannot load: the gateway does not run without them', async () => {
    await expect(startKeyCrypto(settings, silentLogger, missing)).rejects.toThrow(/no-such-worker\.mjs/);
  });

  it('with fallBackInline, workers that cannot load leave key work on the event loop, said loudly', async () => {
    const lines: { msg: string; level: string }[] = [];
    const crypto = createKeyCrypto(
      settings,
      createLogger('debug', (line) => lines.push(JSON.parse(line))),
      {
        entry: missing,
        fallBackInline: true,
      },
    );
    await crypto.start();
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'error',
        msg: 'key crypto workers could not start; key work runs on the event loop',
      }),
    );
    const key = await keygen({ type: 'ed25519', passphrase: PASSPHRASE, rounds: 4 });
    await expect(
      crypto.parsePrivateKey(key.privateKey, PASSPHRASE, 'auth.privateKey'),
    ).resolves.toMatchObject({
      type: 'ssh-ed25519',
    });
    await crypto.close();
  });
});

describe('keyCryptoSettingsFrom', () => {
  it('defaults to one worker fewer than the CPUs (at least one), a bounded queue and a deadline', () => {
    const settings = keyCryptoSettingsFrom(parseEnv({}));
    expect(settings.workers).toBeGreaterThanOrEqual(1);
    expect(settings).toMatchObject({ maxQueue: 32, taskTimeoutMs: 60_000 });
    expect(keyCryptoSettingsFrom(parseEnv({ KEY_CRYPTO_WORKERS: '3' })).workers).toBe(3);
  });

  it('KEY_CRYPTO_WORKERS=0 runs inline, and says what that costs', async () => {
    const lines: { msg: string; level: string }[] = [];
    const inline = await startKeyCrypto(
      keyCryptoSettingsFrom(parseEnv({ KEY_CRYPTO_WORKERS: '0' })),
      createLogger('debug', (line) => lines.push(JSON.parse(line))),
    );
    expect(inline.stats).toBeUndefined();
    expect(lines).toEqual([
      expect.objectContaining({ level: 'warn', msg: 'key crypto runs on the event loop' }),
    ]);
    await expect(inline.generateKeyPair('ed25519', 'x')).resolves.toMatchObject({
      publicKey: /^ssh-ed25519 /,
    });
    await inline.close();
  });
});

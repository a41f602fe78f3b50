/**
 * The gateway's bastion connect with the key crypto pool, against a real OpenSSH bastion: a
 * passphrase-protected customer key is derived on the pool (once: reconnects use the cache) while
 * the event loop keeps running, a large RSA key signs on the pool, a PKCS#8 key (which ssh2 cannot
 * read by itself) logs in, and a full pool is an `OverloadedError` the runner retries, not a
 * status the customer sees.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BastionConnectOptions,
  type BastionCredentials,
  connectToBastion,
} from '../../../fargate/standard/bastion-connection';
import { BastionKeyLoader, MAX_INLINE_RSA_BITS } from '../../../fargate/standard/bastion-keys';
import { type KeyCryptoService, startKeyCrypto } from '../../../shared/crypto-pool/pooled-key-crypto';
import { OverloadedError } from '../../../shared/errors';
import { MAX_BCRYPT_ROUNDS, parsePrivateKey } from '../../../shared/keys';
import { silentLogger } from '../../../shared/logger';
import { encodeOpenSshPrivateKey } from '../../../shared/private-key-decrypt';
import { Bastion } from '../../helpers/bastion';
import { requireTools } from '../../helpers/customer';
import { keygen } from '../../helpers/keygen';
import { measureLoopBusy } from '../../helpers/loop-busy';

const PASSPHRASE = 'open sesame, 64 rounds';

describe('bastion keys through the key crypto pool', () => {
  let bastion: Bastion;
  let service: Server;
  let crypto: KeyCryptoService;
  let passphraseKey: BastionCredentials['keys'][number];
  let publicLine: string;

  beforeAll(async () => {
    requireTools('ssh-keygen');
    let made: { privateKey: string; publicKey: string };
    [bastion, made, crypto] = await Promise.all([
      Bastion.start(),
      keygen({ type: 'ed25519', passphrase: PASSPHRASE, rounds: MAX_BCRYPT_ROUNDS }),
      startKeyCrypto({ workers: 1, maxQueue: 0, taskTimeoutMs: 60_000 }, silentLogger),
    ]);
    // What the API stored at create: the key as the customer pasted it, and its passphrase.
    const info = parsePrivateKey(made.privateKey, PASSPHRASE, 'auth.privateKey');
    passphraseKey = { privateKey: info.privateKey, passphrase: PASSPHRASE, fingerprint: info.fingerprint };
    publicLine = info.publicKey;
    service = createServer((s) => s.end('hello\n'));
    await new Promise<void>((r) => service.listen(0, '127.0.0.1', r));
  }, 120_000);

  afterAll(async () => {
    await Promise.all([bastion?.dispose(), crypto?.close()]);
    service?.close();
  });

  const target = () => ({ host: '127.0.0.1', port: bastion.port, user: bastion.user });
  const options = (keys: BastionKeyLoader): BastionConnectOptions => ({
    allowPrivateHosts: true,
    readyTimeoutMs: 10_000,
    keepaliveIntervalMs: 5_000,
    keepaliveCountMax: 3,
    keys,
  });
  const completed = () => crypto.stats?.completed ?? Number.NaN;

  it(`a ${MAX_BCRYPT_ROUNDS}-round passphrase key is derived on the pool, once, without stalling the loop`, async () => {
    await bastion.setAuthorizedKeys([publicLine]);
    const keys = new BastionKeyLoader(crypto);
    const before = completed();
    const {
      value: conn,
      longestBusyMs,
      longestStallMs,
    } = await measureLoopBusy(() => connectToBastion(target(), { keys: [passphraseKey] }, options(keys)));
    console.info(
      `figure: bastion connect with a 64-round key: event loop busy at most ${longestBusyMs.toFixed(0)} ms at a stretch, longest timer stall ${longestStallMs.toFixed(0)} ms`,
    );
    expect(conn.authenticatedWith).toBe(passphraseKey.fingerprint);
    conn.close();
    expect(longestBusyMs).toBeLessThan(100); // inline it is the whole derivation, ~2 s of CPU
    expect(completed()).toBe(before + 1);

    // A reconnect (or a rotation probe) uses the decrypted key it already has.
    const again = await connectToBastion(target(), { keys: [passphraseKey] }, options(keys));
    expect(again.authenticatedWith).toBe(passphraseKey.fingerprint);
    again.close();
    expect(completed()).toBe(before + 1);
    expect(keys.cachedCount).toBe(1);
  });

  it(`an RSA key above ${MAX_INLINE_RSA_BITS} bits signs on the pool, at every connect`, async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: MAX_INLINE_RSA_BITS + 64 }).privateKey;
    const info = parsePrivateKey(encodeOpenSshPrivateKey(rsa), undefined, 'auth.privateKey');
    expect(info.bits).toBe(MAX_INLINE_RSA_BITS + 64);
    await bastion.setAuthorizedKeys([info.publicKey]);
    const keys = new BastionKeyLoader(crypto);
    const key = { privateKey: info.privateKey, fingerprint: info.fingerprint };
    const before = completed();
    for (let i = 1; i <= 2; i++) {
      const conn = await connectToBastion(target(), { keys: [key] }, options(keys));
      // OpenSSH 9 takes RSA only as rsa-sha2-256/512: the pool signed with the hash ssh2 asked for.
      expect(conn.authenticatedWith).toBe(info.fingerprint);
      conn.close();
      expect(completed()).toBe(before + i);
    }
  });

  it('a PKCS#8 key, which ssh2 cannot read by itself, logs in (converted inline: no passphrase)', async () => {
    const pkcs8 = await keygen({ type: 'ecdsa', bits: 384, format: 'PKCS8' });
    const info = parsePrivateKey(pkcs8.privateKey, undefined, 'auth.privateKey');
    await bastion.setAuthorizedKeys([info.publicKey]);
    const before = completed();
    const conn = await connectToBastion(
      target(),
      { keys: [{ privateKey: info.privateKey, fingerprint: info.fingerprint }] },
      options(new BastionKeyLoader(crypto)),
    );
    expect(conn.authenticatedWith).toBe(info.fingerprint);
    conn.close();
    expect(completed()).toBe(before);
  });

  it('a full pool is an OverloadedError (retry later), not a failure of the bastion', async () => {
    await bastion.setAuthorizedKeys([publicLine]);
    // The only worker busy with another derivation, and no queue: the connect cannot be served now.
    const other = await keygen({ type: 'ed25519', passphrase: PASSPHRASE, rounds: MAX_BCRYPT_ROUNDS });
    const busy = crypto.decryptPrivateKey(other.privateKey, PASSPHRASE);
    const outcome = await connectToBastion(
      target(),
      { keys: [passphraseKey] },
      options(new BastionKeyLoader(crypto)),
    ).then(
      (conn) => {
        conn.close();
        return 'connected';
      },
      (err: unknown) => err,
    );
    expect(outcome).toBeInstanceOf(OverloadedError);
    expect((outcome as OverloadedError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    await busy;
  });
});

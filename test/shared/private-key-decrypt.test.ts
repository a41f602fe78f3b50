/**
 * What the crypto pool hands back for a passphrase-protected key must be the same key, in a form
 * ssh2 reads: every type and format ssh-keygen writes, decrypted, re-encoded, parsed back by ssh2,
 * signing what the customer's public key verifies.
 */
import { generateKeyPairSync } from 'node:crypto';
import ssh2, { type ParsedKey } from 'ssh2';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePrivateKey } from '../../shared/keys';
import {
  decryptPrivateKey,
  encodeOpenSshPrivateKey,
  KeyDecryptError,
} from '../../shared/private-key-decrypt';
import { requireTools } from '../helpers/customer';
import { type KeygenOptions, keygen } from '../helpers/keygen';

const { utils } = ssh2;
const PASSPHRASE = 'correct horse battery';

function parsedPrivate(text: string): ParsedKey {
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error || Array.isArray(parsed))
    throw new Error(`ssh2 cannot parse: ${String(parsed)}`);
  expect(parsed.isPrivateKey()).toBe(true);
  return parsed;
}

/** The decrypted key is the customer's: same public blob, and its signatures verify against it. */
function expectSameKey(decrypted: string, publicLine: string): void {
  expect(decrypted).toMatch(
    /^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]+\n-----END OPENSSH PRIVATE KEY-----\n$/,
  );
  const key = parsedPrivate(decrypted);
  const pub = utils.parseKey(publicLine);
  if (pub instanceof Error || Array.isArray(pub)) throw new Error('public key unparseable');
  expect(key.getPublicSSH().equals(pub.getPublicSSH())).toBe(true);
  const data = Buffer.from('session identifier and userauth request');
  const hash = key.type === 'ssh-rsa' ? 'sha512' : undefined;
  const signature = key.sign(data, hash);
  if (signature instanceof Error) throw signature;
  expect(pub.verify(data, signature, hash)).toBe(true);
}

describe('decryptPrivateKey on keys made by ssh-keygen', () => {
  const cases: [string, KeygenOptions][] = [
    ['OpenSSH ed25519', { type: 'ed25519', passphrase: PASSPHRASE, rounds: 4 }],
    ['OpenSSH RSA-3072', { type: 'rsa', bits: 3072, passphrase: PASSPHRASE, rounds: 4 }],
    ['OpenSSH ECDSA P-256', { type: 'ecdsa', bits: 256, passphrase: PASSPHRASE, rounds: 4 }],
    ['OpenSSH ECDSA P-384', { type: 'ecdsa', bits: 384, passphrase: PASSPHRASE, rounds: 4 }],
    ['OpenSSH ECDSA P-521', { type: 'ecdsa', bits: 521, passphrase: PASSPHRASE, rounds: 4 }],
    ['PEM RSA (Proc-Type encrypted)', { type: 'rsa', bits: 2048, passphrase: PASSPHRASE, format: 'PEM' }],
    ['PEM EC (Proc-Type encrypted)', { type: 'ecdsa', bits: 384, passphrase: PASSPHRASE, format: 'PEM' }],
    ['PKCS#8 ECDSA P-521 (PBES2)', { type: 'ecdsa', bits: 521, passphrase: PASSPHRASE, format: 'PKCS8' }],
    ['PKCS#8 RSA, unencrypted (ssh2 cannot read it)', { type: 'rsa', bits: 2048, format: 'PKCS8' }],
    ['OpenSSH ed25519, unencrypted', { type: 'ed25519' }],
  ];
  const keys = new Map<string, { privateKey: string; publicKey: string }>();

  beforeAll(async () => {
    requireTools('ssh-keygen');
    await Promise.all(cases.map(async ([name, options]) => keys.set(name, await keygen(options))));
  }, 120_000);

  it.each(cases)('%s: ssh2 parses the result, and it is the same key', (name, options) => {
    const key = keys.get(name);
    if (!key) throw new Error(`no key ${name}`);
    const decrypted = decryptPrivateKey(key.privateKey, options.passphrase);
    expectSameKey(decrypted, key.publicKey);
    expect(decrypted).not.toContain('ENCRYPTED');
    // The API accepts it and derives the same public key.
    const info = parsePrivateKey(key.privateKey, options.passphrase, 'auth.privateKey');
    expect(info.publicKey).toBe(key.publicKey.split(' ').slice(0, 2).join(' '));
  });

  it('a wrong passphrase fails with KeyDecryptError, saying nothing about the key or the passphrase', () => {
    for (const name of ['OpenSSH ed25519', 'PEM RSA (Proc-Type encrypted)', 'PKCS#8 ECDSA P-521 (PBES2)']) {
      const key = keys.get(name);
      if (!key) throw new Error(`no key ${name}`);
      let thrown: unknown;
      try {
        decryptPrivateKey(key.privateKey, 'not the passphrase');
      } catch (err) {
        thrown = err;
      }
      expect(thrown, name).toBeInstanceOf(KeyDecryptError);
      const text = `${(thrown as Error).message} ${String((thrown as Error).cause ?? '')}`;
      expect(text).not.toContain('not the passphrase');
      expect(text).not.toMatch(/BEGIN|[A-Za-z0-9+/]{40}/);
    }
  });
});

describe('encodeOpenSshPrivateKey', () => {
  // P-521 scalars are 66 bytes whose top byte is 0 or 1 and P-256/384 ones may start with 0x00 or
  // have the high bit set: mpint encoding must handle each; many keys make each case likely.
  it.each([
    ['ed25519', () => generateKeyPairSync('ed25519').privateKey],
    ['P-256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey],
    ['P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey],
    ['P-521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey],
    ['RSA-2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
  ])('%s keys come back from ssh2 as the same key', (type, make) => {
    const count = type.startsWith('RSA') ? 3 : 24;
    for (let i = 0; i < count; i++) {
      const key = make();
      const encoded = encodeOpenSshPrivateKey(key);
      const parsed = parsedPrivate(encoded);
      const line = `${parsed.type} ${parsed.getPublicSSH().toString('base64')}`;
      expectSameKey(encoded, line);
      // And ssh-keygen's reading of the public half agrees with Node's.
      const fromNode = parsePrivateKey(
        key.export({ type: 'pkcs8', format: 'pem' }).toString(),
        undefined,
        'k',
      );
      expect(fromNode.publicKey).toBe(line);
    }
  });
});

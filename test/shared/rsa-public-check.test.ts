/**
 * RSA public keys are checked as OpenSSL checks them (odd modulus, odd exponent above 1, e < n, no
 * small factors) before we store one or derive one from a customer's private key; keys from
 * ssh-keygen and PuTTYgen's exponent still pass.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors';
import { fingerprintOf, parsePrivateKey, parsePublicKey } from '../../shared/keys';
import { rsaPublicKeyProblem } from '../../shared/rsa-public-check';
import { requireTools } from '../helpers/customer';

const run = promisify(execFile);

// SSH wire format (RFC 4251 section 5), written independently of shared/keys.ts.
function sshString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}
const bytesOf = (value: bigint): Buffer => {
  const hex = value.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
};
const mpint = (value: bigint): Buffer => {
  const bytes = bytesOf(value);
  return sshString((bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
};
const toBig = (b64url: string | undefined) =>
  BigInt(`0x${Buffer.from(b64url ?? '', 'base64url').toString('hex')}`);
const rsaLine = (e: bigint, n: bigint, rawE?: Buffer) =>
  `ssh-rsa ${Buffer.concat([sshString('ssh-rsa'), rawE ? sshString(rawE) : mpint(e), mpint(n)]).toString('base64')} test`;

function refusal(fn: () => unknown): { path: string; message: string } {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const [issue] = error.issues;
    if (!issue) throw new Error('ValidationError without issues');
    return issue;
  }
  throw new Error('expected a ValidationError');
}

// A real 2048-bit key (two large primes) to derive bogus ones from.
const real = generateKeyPairSync('rsa', { modulusLength: 2048 });
const realJwk = real.privateKey.export({ format: 'jwk' });
const n = toBig(realJwk.n);
const e = toBig(realJwk.e);

describe('rsaPublicKeyProblem', () => {
  it.each([
    ['an even modulus', e, n + 1n, /modulus is even/],
    ['e = 1', 1n, n, /exponent is 1; it must be an odd number of at least 3/],
    ['e = 0', 0n, n, /exponent is 0/],
    ['an even e (65536)', 65536n, n, /exponent is even/],
    ['an even e (2)', 2n, n, /exponent is even/],
    ['e = n', n, n, /not smaller than the modulus/],
    ['e > n', n + 2n, n, /not smaller than the modulus/],
    ['a 257-bit e', (1n << 256n) + 1n, n, /257 bits; at most 256/],
    ['a factor 3', e, 3n * n, /small prime factor/],
    ['a factor 751', e, 751n * n, /small prime factor/],
    ['a factor 743 * 739', e, 743n * 739n * n, /small prime factor/],
  ])('refuses %s', (_name, exponent, modulus, message) => {
    expect(rsaPublicKeyProblem(bytesOf(exponent), bytesOf(modulus))).toMatch(message);
  });

  it('refuses an exponent over 64 bits above 3072-bit moduli, as OpenSSL refuses to verify with it', () => {
    const large = generateKeyPairSync('rsa', { modulusLength: 4096 }).publicKey.export({ format: 'jwk' });
    const n4096 = toBig(large.n);
    expect(rsaPublicKeyProblem(bytesOf((1n << 64n) + 1n), bytesOf(n4096))).toMatch(/over 3072 bits/);
    expect(rsaPublicKeyProblem(bytesOf((1n << 64n) - 1n), bytesOf(n4096))).toBeUndefined();
    // Below 3072 bits OpenSSL verifies with any e < n; we cap at 256 bits.
    expect(rsaPublicKeyProblem(bytesOf((1n << 255n) + 1n), bytesOf(n))).toBeUndefined();
  });

  it.each([3n, 37n, 65537n])('accepts the odd exponent %s with a sound modulus', (exponent) => {
    expect(rsaPublicKeyProblem(bytesOf(exponent), bytesOf(n))).toBeUndefined();
  });

  it('is cheap enough for the request path: a 16384-bit modulus checks in well under 50 ms', () => {
    // Not a benchmark: a generous bound that only a pathological implementation would miss.
    const big = (n << 14336n) | 1n;
    const started = performance.now();
    for (let i = 0; i < 10; i++) rsaPublicKeyProblem(bytesOf(65537n), bytesOf(big));
    expect((performance.now() - started) / 10).toBeLessThan(50);
  });
});

describe('what OpenSSL itself says of the keys we refuse', () => {
  let dir: string;
  beforeAll(async () => {
    requireTools('openssl');
    dir = await mkdtemp(join(tmpdir(), 'tk-openssl-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Writes the key as PEM and runs `openssl pkey -check` on it, or recovers a signature with it. */
  async function openssl(
    name: string,
    exponent: bigint,
    modulus: bigint,
    mode: 'check' | 'verify',
  ): Promise<string> {
    const jwk = {
      kty: 'RSA',
      n: bytesOf(modulus).toString('base64url'),
      e: bytesOf(exponent).toString('base64url'),
    };
    const pem = join(dir, `${name}.pem`);
    await writeFile(
      pem,
      createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }),
    );
    const signature = join(dir, 'signature');
    await writeFile(signature, Buffer.alloc(bytesOf(modulus).length, 1));
    const args =
      mode === 'check'
        ? ['pkey', '-check', '-noout', '-pubin', '-in', pem]
        : ['pkeyutl', '-verifyrecover', '-pubin', '-inkey', pem, '-in', signature, '-out', '/dev/null'];
    return run('openssl', args).then(
      (r) => `${r.stdout}${r.stderr}`,
      (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
    );
  }

  it.each([
    ['even-n', e, n + 1n],
    ['e-1', 1n, n],
    ['even-e', 65536n, n],
    ['small-factor', e, 751n * n],
  ])('openssl pkey -check finds %s invalid, and so do we', async (name, exponent, modulus) => {
    expect(await openssl(name, exponent, modulus, 'check')).toMatch(/Key is invalid/);
    expect(rsaPublicKeyProblem(bytesOf(exponent), bytesOf(modulus))).toBeDefined();
  });

  it('OpenSSL verifies with no key whose e is not below n, so we refuse it too', async () => {
    const output = await openssl('e-ge-n', n + 2n, n, 'verify');
    expect(output).toMatch(/bad e value/);
    expect(rsaPublicKeyProblem(bytesOf(n + 2n), bytesOf(n))).toMatch(/not smaller than the modulus/);
  });

  it.each([
    ['e-3', 3n],
    ['e-37', 37n],
    ['e-65537', 65537n],
  ])('openssl pkey -check finds %s valid, and so do we', async (name, exponent) => {
    expect(await openssl(name, exponent, n, 'check')).toMatch(/Key is valid/);
    expect(rsaPublicKeyProblem(bytesOf(exponent), bytesOf(n))).toBeUndefined();
  });
});

describe('RSA keys from customers', () => {
  let dir: string;
  const generated = new Map<number, { publicKey: string; privateKey: string; fingerprint: string }>();

  beforeAll(async () => {
    requireTools('ssh-keygen');
    dir = await mkdtemp(join(tmpdir(), 'tk-rsa-'));
    await Promise.all(
      [2048, 3072, 4096].map(async (bits) => {
        const path = join(dir, `rsa${bits}`);
        await run('ssh-keygen', [
          '-q',
          '-t',
          'rsa',
          '-b',
          String(bits),
          '-N',
          '',
          '-C',
          `c${bits}`,
          '-f',
          path,
        ]);
        const { stdout } = await run('ssh-keygen', ['-l', '-f', path]);
        generated.set(bits, {
          publicKey: (await readFile(`${path}.pub`, 'utf8')).trim(),
          privateKey: await readFile(path, 'utf8'),
          fingerprint: stdout.split(' ')[1] ?? '',
        });
      }),
    );
  }, 60_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each([2048, 3072, 4096])(
    'accepts ssh-keygen RSA-%i, public and private, with its fingerprint',
    (bits) => {
      const key = generated.get(bits);
      if (!key) throw new Error(`no RSA-${bits} key`);
      const pub = parsePublicKey(key.publicKey, 'publicKey');
      expect(pub.bits).toBe(bits);
      expect(pub.fingerprint).toBe(key.fingerprint);
      const priv = parsePrivateKey(key.privateKey, undefined, 'auth.privateKey');
      expect(priv.fingerprint).toBe(key.fingerprint);
    },
  );

  it("accepts PuTTYgen's exponent 37, and such a key's signatures verify against what we stored", () => {
    const putty = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 37 });
    const jwk = putty.publicKey.export({ format: 'jwk' });
    const info = parsePublicKey(rsaLine(toBig(jwk.e), toBig(jwk.n)), 'publicKey');
    const signature = sign('sha256', Buffer.from('hello'), putty.privateKey);
    const stored = createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' });
    expect(verify('sha256', Buffer.from('hello'), stored, signature)).toBe(true);
    expect(info.bits).toBe(2048);
  });

  it.each([
    ['an even modulus', () => rsaLine(e, n + 1n), /modulus is even/],
    ['e = 1', () => rsaLine(1n, n), /exponent is 1/],
    ['an even e', () => rsaLine(65536n, n), /exponent is even/],
    ['e >= n', () => rsaLine(n + 2n, n), /not smaller than the modulus/],
    ['a small factor', () => rsaLine(e, 7n * n), /small prime factor/],
  ])('refuses a public key with %s on its field, without echoing it', (_name, line, message) => {
    const text = line();
    const issue = refusal(() => parsePublicKey(text, 'publicKey'));
    expect(issue.path).toBe('publicKey');
    expect(issue.message).toMatch(message);
    expect(issue.message).not.toContain(text.split(' ')[1]?.slice(0, 20));
  });

  it('reads superfluous leading zeros as OpenSSH does, and stores the key as OpenSSH writes it', () => {
    const padded = parsePublicKey(rsaLine(e, n, Buffer.concat([Buffer.alloc(3), bytesOf(e)])), 'publicKey');
    const plain = parsePublicKey(rsaLine(e, n), 'publicKey');
    expect(padded.publicKey).toBe(plain.publicKey);
    expect(padded.fingerprint).toBe(plain.fingerprint);
    expect(plain.fingerprint).toBe(fingerprintOf(Buffer.concat([sshString('ssh-rsa'), mpint(e), mpint(n)])));
  });

  it.each([
    ['e = 1', { e: 1n }, /exponent is 1/],
    ['an even e', { e: 4n }, /exponent is even/],
  ])('refuses a private key whose public half has %s, on auth.privateKey', (_name, over, message) => {
    // OpenSSL imports a private key without checking its arithmetic: build one as a forger would.
    const jwk = { ...realJwk, e: Buffer.from(bytesOf(over.e)).toString('base64url') };
    const pem = createPrivateKey({ key: jwk, format: 'jwk' })
      .export({ type: 'pkcs1', format: 'pem' })
      .toString();
    const issue = refusal(() => parsePrivateKey(pem, undefined, 'auth.privateKey'));
    expect(issue).toEqual({ path: 'auth.privateKey', message: expect.stringMatching(message) });
  });
});

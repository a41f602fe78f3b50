/**
 * The hybrid key exchange's halves on their own (fargate/pq-kex/hybrid-kex.ts), with the KEMs the
 * gateway ships (liboqs). ML-KEM-768 is checked against an independent implementation (noble's
 * pure-JavaScript FIPS 203), as no SSH peer here is both independent and ML-KEM capable except
 * OpenSSH 10 (test/fargate/reverse-pq-kex.test.ts). The SSH-level interoperability of both
 * methods is proved there, against OpenSSH 9.2, OpenSSH 10.0 and PuTTY.
 */
import { createHash, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  clientKeys,
  clientSecret,
  HybridKexInputError,
  type HybridKexMethod,
  type Kem,
  serverReply,
} from '../../../fargate/pq-kex/hybrid-kex';
import { loadKems } from '../../../fargate/pq-kex/kems';
import { hybridKexMethods, POST_QUANTUM_KEX } from '../../../fargate/pq-kex/post-quantum-kex';
import { POST_QUANTUM_KEX_ALGORITHMS } from '../../../shared/ssh-algorithms';

let methods: HybridKexMethod[];
const methodNamed = (label: string): HybridKexMethod => {
  const found = methods.find((m) => m.label === label);
  if (!found) throw new Error(`no method ${label}`);
  return found;
};

beforeAll(async () => {
  methods = hybridKexMethods(await loadKems());
});

function x25519Raw(): { privateKey: KeyObject; raw: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey, raw: Buffer.from(String(publicKey.export({ format: 'jwk' }).x), 'base64url') };
}

describe('the offered names', () => {
  it('are the ML-KEM hybrid, then sntrup761x25519 under its RFC 9941 name and OpenSSH’s', () => {
    expect(POST_QUANTUM_KEX).toEqual([
      'mlkem768x25519-sha256',
      'sntrup761x25519-sha512',
      'sntrup761x25519-sha512@openssh.com',
    ]);
  });

  it('are the names the API says the endpoint offers (shared/ssh-algorithms.ts, without the KEMs)', () => {
    expect(POST_QUANTUM_KEX).toEqual(POST_QUANTUM_KEX_ALGORITHMS);
  });
});

describe.each([
  { label: 'sntrup761x25519', hash: 'sha512', init: 1158 + 32, reply: 1039 + 32, secret: 64 },
  { label: 'mlkem768x25519', hash: 'sha256', init: 1184 + 32, reply: 1088 + 32, secret: 32 },
])('$label', ({ label, hash, init, reply, secret }) => {
  it(`agrees on a ${secret}-byte ${hash} secret through Q_C (${init} bytes) and Q_S (${reply} bytes)`, () => {
    const method = methodNamed(label);
    expect(method.hash).toBe(hash);
    const client = clientKeys(method);
    expect(client.init).toHaveLength(init);
    const server = serverReply(method, client.init);
    expect(server.reply).toHaveLength(reply);
    expect(server.secret).toHaveLength(secret);
    expect(clientSecret(method, client, server.reply)).toEqual(server.secret);
    // Fresh randomness on both sides: a second exchange shares nothing with the first.
    const again = serverReply(method, clientKeys(method).init);
    expect(again.secret.equals(server.secret)).toBe(false);
  });

  it.each([
    ['empty', -init],
    ['one byte short', -1],
    ['one byte long', +1],
    ['the X25519 key alone', 32 - init],
  ])('refuses a client key that is %s, naming both lengths', (_what, delta) => {
    const method = methodNamed(label);
    const length = init + delta;
    expect(() => serverReply(method, Buffer.alloc(length, 7))).toThrow(HybridKexInputError);
    expect(() => serverReply(method, Buffer.alloc(length, 7))).toThrow(
      `client's ${label} public key is ${length} bytes, expected ${init}`,
    );
  });

  it('refuses an X25519 key of small order (the all-zero shared secret), as OpenSSH does', () => {
    const method = methodNamed(label);
    const good = clientKeys(method).init;
    const zeroPoint = Buffer.concat([good.subarray(0, init - 32), Buffer.alloc(32)]);
    expect(() => serverReply(method, zeroPoint)).toThrow("client's X25519 public key is not usable");
  });

  it('refuses a server reply of the wrong length on the client side', () => {
    const method = methodNamed(label);
    const client = clientKeys(method);
    expect(() => clientSecret(method, client, Buffer.alloc(reply - 1))).toThrow(
      `server's ${label} reply is ${reply - 1} bytes, expected ${reply}`,
    );
  });
});

describe('ML-KEM-768 from liboqs against noble’s FIPS 203', () => {
  it('K is SHA-256(ML-KEM secret || X25519 secret), each half recomputed without our code', () => {
    const method = methodNamed('mlkem768x25519');
    const pq = ml_kem768.keygen();
    const classical = x25519Raw();
    const server = serverReply(method, Buffer.concat([pq.publicKey, classical.raw]));
    const ciphertext = server.reply.subarray(0, 1088);
    const serverX25519 = server.reply.subarray(1088);
    const pqSecret = ml_kem768.decapsulate(ciphertext, pq.secretKey);
    const jwk = { kty: 'OKP', crv: 'X25519', x: serverX25519.toString('base64url') };
    const classicalSecret = diffieHellman({
      privateKey: classical.privateKey,
      publicKey: createPublicKey({ key: jwk, format: 'jwk' }),
    });
    const expected = createHash('sha256').update(pqSecret).update(classicalSecret).digest();
    expect(server.secret).toEqual(expected);
  });

  it('decapsulates what noble encapsulated to its key', () => {
    const kem: Kem = methodNamed('mlkem768x25519').kem;
    const keys = kem.generateKeyPair();
    const { cipherText, sharedSecret } = ml_kem768.encapsulate(keys.publicKey);
    expect(Buffer.from(kem.decapsulate(cipherText, keys.secretKey))).toEqual(Buffer.from(sharedSecret));
  });

  it('refuses a public key whose coefficients are not reduced (FIPS 203 §7.2), as noble and OpenSSH do', () => {
    const method = methodNamed('mlkem768x25519');
    const unreduced = Buffer.alloc(1184, 0xff);
    expect(() => ml_kem768.encapsulate(unreduced)).toThrow(/modulus/);
    const blob = Buffer.concat([unreduced, x25519Raw().raw]);
    expect(() => serverReply(method, blob)).toThrow("client's ML-KEM-768 public key is not valid");
  });
});

/**
 * Post-quantum/classical hybrid key exchange for SSH, as OpenSSH does it (kexsntrup761x25519.c,
 * kexmlkem768x25519.c; RFC 9941 and draft-ietf-sshm-mlkem-hybrid-kex). The message flow is
 * curve25519-sha256's (RFC 8731) with other contents:
 *
 *   client → server   Q_C = KEM public key || X25519 public key
 *   server → client   Q_S = KEM ciphertext (to the client's KEM key) || X25519 public key
 *   both              K   = HASH(KEM shared secret || X25519 shared secret)
 *
 * K is used as an SSH *string* (uint32 length, then the digest) in the exchange hash and the key
 * derivation, not as an mpint as in plain ECDH: the caller (ssh2's KeyExchange) writes it that way
 * when handed the raw digest. Either half alone keeps the session secret: a broken KEM leaves
 * X25519's security, a quantum computer that breaks X25519 still faces the KEM.
 *
 * No I/O and no ssh2 here: the KEM is passed in (kems.ts), X25519 and the hashes are Node's.
 */
import { createHash, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';

const X25519_BYTES = 32;

/** A KEM as the hybrid uses it: the server encapsulates to the client's key, the client decapsulates. */
export interface Kem {
  readonly name: string;
  readonly publicKeyBytes: number;
  readonly ciphertextBytes: number;
  generateKeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array };
  /** Throws on a public key the KEM rejects (ML-KEM checks its coefficients, FIPS 203 §7.2). */
  encapsulate(publicKey: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array };
  decapsulate(ciphertext: Uint8Array, secretKey: Uint8Array): Uint8Array;
}

export interface HybridKexMethod {
  /** Names it is negotiated under, preferred first (RFC 9941 adds a name without `@openssh.com`). */
  readonly names: readonly string[];
  /** Short label for logs and errors, e.g. `sntrup761x25519`. */
  readonly label: string;
  readonly kem: Kem;
  readonly hash: 'sha256' | 'sha512';
}

/** Input from the peer that the exchange cannot use: the handshake fails with this message. */
export class HybridKexInputError extends Error {
  override name = 'HybridKexInputError';
}

/** What the client keeps between sending Q_C and receiving Q_S. */
export interface ClientKeys {
  /** Q_C, sent in SSH_MSG_KEX_ECDH_INIT. */
  readonly init: Buffer;
  readonly kemSecretKey: Uint8Array;
  readonly x25519PrivateKey: KeyObject;
}

function x25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

function x25519KeyPair(): { privateKey: KeyObject; publicKey: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const x = publicKey.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new Error('X25519 public key export failed');
  return { privateKey, publicKey: Buffer.from(x, 'base64url') };
}

/**
 * The X25519 half. OpenSSL refuses a peer key that gives the all-zero secret (a small-order point),
 * as OpenSSH's kexc25519_shared_key_ext does: that refusal is the peer's fault, reported as such.
 */
function x25519Shared(privateKey: KeyObject, peerPublic: Uint8Array, whose: string): Buffer {
  try {
    return diffieHellman({ privateKey, publicKey: x25519PublicKey(peerPublic) });
  } catch (cause) {
    throw new HybridKexInputError(`${whose} X25519 public key is not usable`, { cause });
  }
}

function combine(method: HybridKexMethod, kemSecret: Uint8Array, x25519Secret: Buffer): Buffer {
  const digest = createHash(method.hash).update(kemSecret).update(x25519Secret).digest();
  // Best effort: JavaScript cannot promise that no copy of a secret survives elsewhere.
  kemSecret.fill(0);
  x25519Secret.fill(0);
  return digest;
}

/** Client: fresh KEM and X25519 key pairs, and Q_C to send. */
export function clientKeys(method: HybridKexMethod): ClientKeys {
  const kem = method.kem.generateKeyPair();
  const x25519 = x25519KeyPair();
  return {
    init: Buffer.concat([kem.publicKey, x25519.publicKey]),
    kemSecretKey: kem.secretKey,
    x25519PrivateKey: x25519.privateKey,
  };
}

/**
 * Server: from the client's Q_C, the reply Q_S and the shared secret K (the raw digest). Throws
 * HybridKexInputError when Q_C has the wrong length or a half the primitives refuse.
 */
export function serverReply(
  method: HybridKexMethod,
  clientInit: Uint8Array,
): { reply: Buffer; secret: Buffer } {
  const { kem } = method;
  const expected = kem.publicKeyBytes + X25519_BYTES;
  if (clientInit.length !== expected) {
    throw new HybridKexInputError(
      `client's ${method.label} public key is ${clientInit.length} bytes, expected ${expected} ` +
        `(${kem.name} ${kem.publicKeyBytes} + X25519 ${X25519_BYTES})`,
    );
  }
  const kemPublic = clientInit.subarray(0, kem.publicKeyBytes);
  const clientX25519 = clientInit.subarray(kem.publicKeyBytes);
  let encapsulated: { ciphertext: Uint8Array; sharedSecret: Uint8Array };
  try {
    encapsulated = kem.encapsulate(kemPublic);
  } catch (cause) {
    throw new HybridKexInputError(`client's ${kem.name} public key is not valid`, { cause });
  }
  const x25519 = x25519KeyPair();
  const x25519Secret = x25519Shared(x25519.privateKey, clientX25519, "client's");
  return {
    reply: Buffer.concat([encapsulated.ciphertext, x25519.publicKey]),
    secret: combine(method, encapsulated.sharedSecret, x25519Secret),
  };
}

/** Client: the shared secret K (the raw digest) from the server's Q_S. */
export function clientSecret(method: HybridKexMethod, keys: ClientKeys, serverReplyBlob: Uint8Array): Buffer {
  const { kem } = method;
  const expected = kem.ciphertextBytes + X25519_BYTES;
  if (serverReplyBlob.length !== expected) {
    throw new HybridKexInputError(
      `server's ${method.label} reply is ${serverReplyBlob.length} bytes, expected ${expected}`,
    );
  }
  const kemSecret = kem.decapsulate(serverReplyBlob.subarray(0, kem.ciphertextBytes), keys.kemSecretKey);
  const x25519Secret = x25519Shared(
    keys.x25519PrivateKey,
    serverReplyBlob.subarray(kem.ciphertextBytes),
    "server's",
  );
  return combine(method, kemSecret, x25519Secret);
}

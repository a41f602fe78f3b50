/**
 * The key tasks a crypto worker runs, each with the schema of its payload (checked in the worker)
 * and of its result (checked by the caller in the pool's process). Results that cannot cross
 * (ssh2's parsed keys) cross as text: an unencrypted OpenSSH key that ssh2 parses in microseconds.
 */
import { z } from 'zod';
import { signInline } from '../key-crypto';
import { generateKeyPairSync, parsePrivateKey } from '../keys';
import { decryptPrivateKey, KeyDecryptError } from '../private-key-decrypt';
import type { TaskFailure } from './protocol';
import { type TaskHandler, withheldFailure } from './worker';

export const ParsePrivateKeyTask = z.object({
  input: z.string(),
  passphrase: z.string().optional(),
  field: z.string(),
});
export const PrivateKeyInfoSchema = z.object({
  privateKey: z.string(),
  publicKey: z.string(),
  type: z.string(),
  fingerprint: z.string(),
  bits: z.number().int().optional(),
});

export const GenerateKeyPairTask = z.object({
  keyType: z.enum(['ed25519', 'rsa', 'ecdsa']),
  comment: z.string(),
});
export const KeyPairSchema = z.object({
  privateKey: z.string(),
  publicKey: z.string(),
  fingerprint: z.string(),
});

export const DecryptPrivateKeyTask = z.object({ privateKey: z.string(), passphrase: z.string().optional() });
export const DecryptedKeySchema = z.string().startsWith('-----BEGIN OPENSSH PRIVATE KEY-----');

export const SignTask = z.object({
  /** Unencrypted (what decryptPrivateKey returns): the expensive part here is the signature itself. */
  privateKey: z.string(),
  data: z.instanceof(Uint8Array),
  hash: z.string().optional(),
});
export const SignatureSchema = z.instanceof(Uint8Array);

export type KeyTaskKind = 'parsePrivateKey' | 'generateKeyPair' | 'decryptPrivateKey' | 'sign';

export const keyTaskHandlers: Record<KeyTaskKind, TaskHandler> = {
  parsePrivateKey: (payload) => {
    const { input, passphrase, field } = ParsePrivateKeyTask.parse(payload);
    return parsePrivateKey(input, passphrase, field);
  },
  generateKeyPair: (payload) => {
    const { keyType, comment } = GenerateKeyPairTask.parse(payload);
    return generateKeyPairSync(keyType, comment);
  },
  decryptPrivateKey: (payload) => {
    const { privateKey, passphrase } = DecryptPrivateKeyTask.parse(payload);
    return decryptPrivateKey(privateKey, passphrase);
  },
  sign: (payload) => {
    const { privateKey, data, hash } = SignTask.parse(payload);
    return signInline(privateKey, Buffer.from(data.buffer, data.byteOffset, data.byteLength), hash);
  },
};

/** Our own key errors say nothing secret and may cross; anything else only by name. */
export function describeKeyTaskFailure(err: unknown): TaskFailure {
  if (err instanceof KeyDecryptError || err instanceof RangeError) {
    return { kind: 'failed', name: err.name, message: err.message };
  }
  return withheldFailure(err);
}

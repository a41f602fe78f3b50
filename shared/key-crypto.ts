/**
 * The heavy key operations behind one port, so each runtime decides where they run: the gateway
 * and `npm start` on a bounded pool of worker threads (shared/crypto-pool/), the API Lambda inline
 * (an instance serves one request at a time: blocking delays only that request), tests that do
 * not care inline too.
 */
import ssh2 from 'ssh2';
import { generateKeyPair, type KeyPair, type KeyType, type PrivateKeyInfo, parsePrivateKey } from './keys';
import { decryptPrivateKey, KeyDecryptError } from './private-key-decrypt';

const { utils } = ssh2;

export interface KeyCrypto {
  /** `parsePrivateKey` of shared/keys.ts: the same result, the same `ValidationError`s. */
  parsePrivateKey(input: string, passphrase: string | undefined, field: string): Promise<PrivateKeyInfo>;
  /** `generateKeyPair` of shared/keys.ts. */
  generateKeyPair(type: KeyType, comment: string): Promise<KeyPair>;
  /**
   * A stored private key (any format `parsePrivateKey` accepts) without its encryption, as an
   * unencrypted OpenSSH key for ssh2. Rejects with `KeyDecryptError` when it cannot be read.
   */
  decryptPrivateKey(privateKey: string, passphrase: string | undefined): Promise<string>;
  /** A signature as ssh2's `ParsedKey.sign` makes it, with an unencrypted OpenSSH key (large RSA). */
  sign(privateKey: string, data: Buffer, hash: string | undefined): Promise<Buffer>;
}

/** Everything on the calling thread. */
export const inlineKeyCrypto: KeyCrypto = {
  parsePrivateKey: async (input, passphrase, field) => parsePrivateKey(input, passphrase, field),
  generateKeyPair: (type, comment) => generateKeyPair(type, comment),
  decryptPrivateKey: async (privateKey, passphrase) => decryptPrivateKey(privateKey, passphrase),
  sign: async (privateKey, data, hash) => signInline(privateKey, data, hash),
};

export function signInline(privateKey: string, data: Buffer, hash: string | undefined): Buffer {
  const key = utils.parseKey(privateKey);
  const parsed = Array.isArray(key) ? key[0] : key;
  if (!parsed || parsed instanceof Error) throw new KeyDecryptError('the signing key could not be parsed');
  const signature = parsed.sign(data, hash);
  if (signature instanceof Error) throw new KeyDecryptError('the key could not sign');
  return signature;
}

/**
 * A tunnel's private keys as ssh2 authentication methods, without heavy crypto on the event loop:
 * a passphrase-protected key is decrypted once on the key crypto pool (bcrypt or PBKDF2, seconds at
 * 64 rounds) and kept decrypted in a bounded cache, so reconnects and rotation probes do not pay
 * again; a large RSA key (a private operation of 60 ms at 8192 bits, 460 ms at 16384) signs on the
 * pool through an in-process ssh2 agent. Everything else (ed25519, ECDSA, RSA up to 4096 bits:
 * under 10 ms per signature) is parsed and used inline, as ssh2 does by itself.
 */
import { createHash } from 'node:crypto';
import ssh2, {
  type AgentAuthMethod,
  type ParsedKey,
  type PublicKeyAuthMethod,
  type SignCallback,
} from 'ssh2';
import type { KeyCrypto } from '../../shared/key-crypto';
import { KeyDecryptError } from '../../shared/private-key-decrypt';

const { utils, BaseAgent } = ssh2;

/** One of a tunnel's keys as the secret holds it. */
export interface BastionKey {
  privateKey: string;
  passphrase?: string;
  fingerprint: string;
}

/** Above this, an RSA signature costs tens of milliseconds or more: it goes to the pool. */
export const MAX_INLINE_RSA_BITS = 4096;
/** Decrypted keys kept per process: a gateway's standard tunnels, with room for rotations. */
export const DEFAULT_MAX_CACHED_KEYS = 1024;

interface LoadedKey {
  key: ParsedKey;
  /** Unencrypted text the pool signs with, for keys too slow to sign inline. */
  slowSigningKey?: string;
}

export class BastionKeyLoader {
  /** Insertion order is recency: a hit moves to the end, the oldest is evicted first. */
  private readonly cache = new Map<string, LoadedKey>();

  constructor(
    private readonly crypto: KeyCrypto,
    private readonly maxCached = DEFAULT_MAX_CACHED_KEYS,
  ) {}

  /**
   * The auth method for `key`, or undefined when it cannot be read (it is skipped, as a key the
   * bastion refuses would be). Rejects with `OverloadedError` when the pool is full: retry later.
   */
  async authFor(user: string, key: BastionKey): Promise<PublicKeyAuthMethod | AgentAuthMethod | undefined> {
    const loaded = await this.load(key);
    if (!loaded) return undefined;
    if (loaded.slowSigningKey === undefined) return { type: 'publickey', username: user, key: loaded.key };
    return {
      type: 'agent',
      username: user,
      agent: new PoolSigningAgent(loaded.key, loaded.slowSigningKey, this.crypto),
    };
  }

  get cachedCount(): number {
    return this.cache.size;
  }

  private async load(key: BastionKey): Promise<LoadedKey | undefined> {
    const id = createHash('sha256')
      .update(key.passphrase ?? '')
      .update('\0')
      .update(key.privateKey)
      .digest('hex');
    const hit = this.cache.get(id);
    if (hit) {
      this.cache.delete(id);
      this.cache.set(id, hit);
      return hit;
    }
    let text = key.privateKey;
    let parsed = key.passphrase ? undefined : parseOne(text);
    if (!parsed) {
      // Encrypted, or a format ssh2 cannot read by itself (PKCS#8): decrypted (on the pool when a
      // passphrase means a key derivation) into an unencrypted OpenSSH key.
      try {
        text = await this.crypto.decryptPrivateKey(key.privateKey, key.passphrase);
      } catch (err) {
        if (err instanceof KeyDecryptError) return undefined;
        throw err;
      }
      parsed = parseOne(text);
      if (!parsed) return undefined;
    }
    const loaded: LoadedKey = isSlowToSign(parsed) ? { key: parsed, slowSigningKey: text } : { key: parsed };
    this.cache.set(id, loaded);
    if (this.cache.size > this.maxCached) {
      const [oldest] = this.cache.keys();
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    return loaded;
  }
}

function parseOne(text: string): ParsedKey | undefined {
  const parsed = utils.parseKey(text);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return key && !(key instanceof Error) && key.isPrivateKey() ? key : undefined;
}

/** RSA above MAX_INLINE_RSA_BITS: the modulus is the third field of the public blob (RFC 4253 §6.6). */
function isSlowToSign(key: ParsedKey): boolean {
  if (key.type !== 'ssh-rsa') return false;
  const blob = key.getPublicSSH();
  let offset = 0;
  const field = () => {
    const length = blob.readUInt32BE(offset);
    const value = blob.subarray(offset + 4, offset + 4 + length);
    offset += 4 + length;
    return value;
  };
  field(); // type
  field(); // e
  const n = field();
  const significant = n[0] === 0 ? n.length - 1 : n.length;
  return significant * 8 > MAX_INLINE_RSA_BITS;
}

/**
 * An ssh2 agent holding one key: ssh2 asks it for the signature once the bastion has accepted the
 * public key (RFC 4252 §7), and it answers from the pool, so the signature never runs on the loop.
 */
class PoolSigningAgent extends BaseAgent<ParsedKey> {
  private readonly publicKey: ParsedKey;

  constructor(
    key: ParsedKey,
    private readonly privateKey: string,
    private readonly crypto: KeyCrypto,
  ) {
    super();
    const publicKey = utils.parseKey(`${key.type} ${key.getPublicSSH().toString('base64')}`);
    if (publicKey instanceof Error || Array.isArray(publicKey)) throw new Error('public key not parseable');
    this.publicKey = publicKey;
  }

  getIdentities(cb: (err: Error | null, keys?: ParsedKey[]) => void): void {
    cb(null, [this.publicKey]);
  }

  sign(_key: ParsedKey, data: Buffer, options: { hash?: string } | SignCallback, cb?: SignCallback): void {
    const done = typeof options === 'function' ? options : cb;
    const hash = typeof options === 'function' ? undefined : options.hash;
    this.crypto.sign(this.privateKey, data, hash).then(
      (signature) => done?.(null, signature),
      (err: unknown) => done?.(err instanceof Error ? err : new Error(String(err))),
    );
  }
}

/**
 * `KeyCrypto` on a pool of worker threads, created once per process (`npm start` shares it
 * between the API and the gateway; the Fargate gateway has its own) and closed on shutdown. Only
 * what is heavy crosses to a thread: a key derivation (any call with a passphrase), RSA generation
 * and large-RSA signatures. The rest takes microseconds to a few milliseconds and stays inline, so
 * a queue of key derivations never delays a reverse tunnel's ed25519 key.
 */
import { availableParallelism } from 'node:os';
import type { z } from 'zod';
import type { Env } from '../config';
import { ValidationError } from '../errors';
import { inlineKeyCrypto, type KeyCrypto } from '../key-crypto';
import type { KeyPair, KeyType, PrivateKeyInfo } from '../keys';
import type { Logger } from '../logger';
import { KeyDecryptError } from '../private-key-decrypt';
import {
  DecryptedKeySchema,
  KeyPairSchema,
  type KeyTaskKind,
  PrivateKeyInfoSchema,
  SignatureSchema,
} from './key-tasks';
import { TaskFailedError, WorkerPool, type WorkerPoolStats } from './pool';

export interface KeyCryptoSettings {
  /** 0: inline, on the event loop. */
  threads: number;
  maxQueue: number;
  taskTimeoutMs: number;
}

export function keyCryptoSettingsFrom(env: Env): KeyCryptoSettings {
  return {
    // One core stays with the event loop; with one CPU, the thread and the loop share it (the
    // kernel's time slices: milliseconds for the loop, not a derivation's seconds).
    threads: env.KEY_CRYPTO_THREADS ?? Math.max(1, availableParallelism() - 1),
    maxQueue: env.KEY_CRYPTO_MAX_QUEUE,
    taskTimeoutMs: env.KEY_CRYPTO_TIMEOUT_MS,
  };
}

/**
 * The thread entry beside this module: `crypto-worker.mjs` here (tsx) from source, the bundled
 * `crypto-worker.mjs` beside `main.mjs` in the gateway image (cdk/lib/bundles.ts emits it there).
 */
export const KEY_CRYPTO_WORKER_ENTRY = new URL('./crypto-worker.mjs', import.meta.url);

/** What a composition holds: the port, its shutdown, and counts for figures and tests. */
export interface KeyCryptoService extends KeyCrypto {
  /** Undefined when inline. */
  readonly stats: WorkerPoolStats | undefined;
  close(): Promise<void>;
}

export async function startKeyCrypto(
  settings: KeyCryptoSettings,
  logger: Logger,
  entry: URL = KEY_CRYPTO_WORKER_ENTRY,
): Promise<KeyCryptoService> {
  if (settings.threads === 0) {
    logger.warn('key crypto runs on the event loop', {
      consequence: 'a key derivation or RSA generation stalls every tunnel of this process for seconds',
      fix: 'unset KEY_CRYPTO_THREADS (or set it above 0)',
    });
    return { ...inlineKeyCrypto, stats: undefined, close: async () => {} };
  }
  const pool = new WorkerPool({
    name: 'key crypto pool',
    entry,
    size: settings.threads,
    maxQueue: settings.maxQueue,
    taskTimeoutMs: settings.taskTimeoutMs,
    logger,
  });
  await pool.start();
  return new PooledKeyCrypto(pool);
}

export class PooledKeyCrypto implements KeyCryptoService {
  constructor(private readonly pool: WorkerPool) {}

  get stats(): WorkerPoolStats {
    return this.pool.stats;
  }

  parsePrivateKey(input: string, passphrase: string | undefined, field: string): Promise<PrivateKeyInfo> {
    // Without a passphrase no key derivation can run: an encrypted key is refused before any.
    if (!passphrase) return inlineKeyCrypto.parsePrivateKey(input, passphrase, field);
    return this.run('parsePrivateKey', { input, passphrase, field }, PrivateKeyInfoSchema);
  }

  generateKeyPair(type: KeyType, comment: string): Promise<KeyPair> {
    // ed25519 and P-256 take a millisecond or two; RSA-4096 seconds.
    if (type !== 'rsa') return inlineKeyCrypto.generateKeyPair(type, comment);
    return this.run('generateKeyPair', { keyType: type, comment }, KeyPairSchema);
  }

  decryptPrivateKey(privateKey: string, passphrase: string | undefined): Promise<string> {
    if (!passphrase) return inlineKeyCrypto.decryptPrivateKey(privateKey, passphrase);
    return this.run('decryptPrivateKey', { privateKey, passphrase }, DecryptedKeySchema);
  }

  async sign(privateKey: string, data: Buffer, hash: string | undefined): Promise<Buffer> {
    // A copy of just these bytes: a Buffer's backing store may be a shared 8 KiB slab.
    const bytes = new Uint8Array(data);
    const signature = await this.run('sign', { privateKey, data: bytes, hash }, SignatureSchema);
    return Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength);
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  /** Rethrows a thread's failure as the error the inline code would have thrown. */
  private async run<T>(kind: KeyTaskKind, payload: object, result: z.ZodType<T>): Promise<T> {
    try {
      return await this.pool.run(kind, payload, result);
    } catch (err) {
      if (!(err instanceof TaskFailedError)) throw err;
      const { failure } = err;
      if (failure.kind === 'validation') throw new ValidationError(failure.issues, { cause: err });
      if (failure.name === 'KeyDecryptError') throw new KeyDecryptError(failure.message, { cause: err });
      if (failure.name === 'RangeError') throw new RangeError(failure.message, { cause: err });
      throw err;
    }
  }
}

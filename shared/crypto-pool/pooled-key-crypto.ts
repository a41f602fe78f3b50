/**
 * `KeyCrypto` on a pool of worker processes, created once per process (`npm start` shares it
 * between the API and the gateway; the Fargate gateway has its own) and closed on shutdown. Only
 * what is heavy crosses to a worker: a key derivation (any call with a passphrase), RSA generation
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
  workers: number;
  maxQueue: number;
  taskTimeoutMs: number;
}

export function keyCryptoSettingsFrom(env: Env): KeyCryptoSettings {
  return {
    // One core stays with the event loop; with one CPU, the worker and the loop share it (the
    // kernel's time slices: milliseconds for the loop, not a derivation's seconds).
    workers: env.KEY_CRYPTO_WORKERS ?? Math.max(1, availableParallelism() - 1),
    maxQueue: env.KEY_CRYPTO_MAX_QUEUE,
    taskTimeoutMs: env.KEY_CRYPTO_TIMEOUT_MS,
  };
}

/**
 * What a key task takes on one core of this kind of machine before the pool has seen some (then it
 * goes by their running mean): a 64-round derivation ~2 s, RSA-4096 generation 1–3 s (its prime
 * search varies), a large-RSA signature 60–500 ms. On the high side: admission refuses at once
 * what the queue could not finish by the deadline.
 */
const EXPECTED_TASK_MS: Record<KeyTaskKind, number> = {
  parsePrivateKey: 2_000,
  decryptPrivateKey: 2_000,
  generateKeyPair: 2_500,
  sign: 500,
};

/**
 * The worker entry beside this module: `crypto-worker.mjs` here (tsx) from source, the bundled
 * `crypto-worker.mjs` beside `main.mjs` in the gateway image (cdk/lib/bundles.ts emits it there).
 */
export const KEY_CRYPTO_WORKER_ENTRY = new URL('./crypto-worker.mjs', import.meta.url);

/** What a composition holds: the port, its start and shutdown, and counts for figures and tests. */
export interface KeyCryptoService extends KeyCrypto {
  /** Undefined when inline. */
  readonly stats: WorkerPoolStats | undefined;
  /** Starts the workers; key work submitted before waits in the queue (within its deadline). */
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface KeyCryptoOptions {
  /** The workers' entry (tests point at a bundle's). */
  entry?: URL;
  /**
   * When the workers cannot load, run key work on the event loop (and say so) instead of failing
   * `start()`: for `npm start`, which starts them in the background. The gateway image fails.
   */
  fallBackInline?: boolean;
}

/** The service, workers not started yet (see `start()`). */
export function createKeyCrypto(
  settings: KeyCryptoSettings,
  logger: Logger,
  options: KeyCryptoOptions = {},
): KeyCryptoService {
  if (settings.workers === 0) {
    logger.warn('key crypto runs on the event loop', {
      consequence: 'a key derivation or RSA generation stalls every tunnel of this process for seconds',
      fix: 'unset KEY_CRYPTO_WORKERS (or set it above 0)',
    });
    return { ...inlineKeyCrypto, stats: undefined, start: async () => {}, close: async () => {} };
  }
  const pool = new WorkerPool({
    name: 'key crypto pool',
    entry: options.entry ?? KEY_CRYPTO_WORKER_ENTRY,
    size: settings.workers,
    maxQueue: settings.maxQueue,
    taskTimeoutMs: settings.taskTimeoutMs,
    logger,
    expectedTaskMs: EXPECTED_TASK_MS,
  });
  return new PooledKeyCrypto(pool, logger, options.fallBackInline ?? false);
}

/** Creates the service and starts its workers; rejects when they cannot load. */
export async function startKeyCrypto(
  settings: KeyCryptoSettings,
  logger: Logger,
  entry: URL = KEY_CRYPTO_WORKER_ENTRY,
): Promise<KeyCryptoService> {
  const service = createKeyCrypto(settings, logger, { entry });
  await service.start();
  return service;
}

export class PooledKeyCrypto implements KeyCryptoService {
  /** The workers could not load and `fallBackInline` was asked for. */
  private isInline = false;
  private isClosed = false;

  constructor(
    private readonly pool: WorkerPool,
    private readonly logger: Logger,
    private readonly fallBackInline: boolean,
  ) {}

  async start(): Promise<void> {
    try {
      await this.pool.start();
    } catch (err) {
      if (this.isClosed) return; // stopped while loading: nothing to run any more
      if (!this.fallBackInline) throw err;
      this.isInline = true;
      this.logger.error('key crypto workers could not start; key work runs on the event loop', {
        err,
        consequence: 'a key derivation or RSA generation stalls every tunnel of this process for seconds',
      });
    }
  }

  get stats(): WorkerPoolStats {
    return this.pool.stats;
  }

  parsePrivateKey(input: string, passphrase: string | undefined, field: string): Promise<PrivateKeyInfo> {
    // Without a passphrase no key derivation can run: an encrypted key is refused before any.
    if (!passphrase || this.isInline) return inlineKeyCrypto.parsePrivateKey(input, passphrase, field);
    return this.run('parsePrivateKey', { input, passphrase, field }, PrivateKeyInfoSchema);
  }

  generateKeyPair(type: KeyType, comment: string): Promise<KeyPair> {
    // ed25519 and P-256 take a millisecond or two; RSA-4096 seconds.
    if (type !== 'rsa' || this.isInline) return inlineKeyCrypto.generateKeyPair(type, comment);
    return this.run('generateKeyPair', { keyType: type, comment }, KeyPairSchema);
  }

  decryptPrivateKey(privateKey: string, passphrase: string | undefined): Promise<string> {
    if (!passphrase || this.isInline) return inlineKeyCrypto.decryptPrivateKey(privateKey, passphrase);
    return this.run('decryptPrivateKey', { privateKey, passphrase }, DecryptedKeySchema);
  }

  async sign(privateKey: string, data: Buffer, hash: string | undefined): Promise<Buffer> {
    if (this.isInline) return inlineKeyCrypto.sign(privateKey, data, hash);
    // A copy of just these bytes: a Buffer's backing store may be a shared 8 KiB slab.
    const bytes = new Uint8Array(data);
    const signature = await this.run('sign', { privateKey, data: bytes, hash }, SignatureSchema);
    return Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength);
  }

  close(): Promise<void> {
    this.isClosed = true;
    return this.pool.close();
  }

  /** Rethrows a worker's failure as the error the inline code would have thrown. */
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

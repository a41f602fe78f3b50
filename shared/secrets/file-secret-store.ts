import { createCipheriv, createDecipheriv, createHash, randomBytes, randomUUID } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { availableBytes, MIN_FREE_BYTES } from '../disk-space';
import {
  SecretAccessDeniedError,
  SecretNotFoundError,
  SecretStoreError,
  SecretStoreUnavailableError,
} from '../errors';
import type { SecretStore } from './secret-store';

const KEY_FILE = 'master.key';
const KEY_BYTES = 32;
const FORMAT_VERSION = 1;
// A random 96-bit IV per write is safe for far more writes than this store will ever see under one key
// (NIST SP 800-38D caps random IVs at 2^32 messages per key).
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * Secrets as files for local runs: one AES-256-GCM encrypted file per secret under a master key kept
 * in `<dir>/master.key`. File layout: version byte, IV, auth tag, ciphertext. The secret name is the
 * additional authenticated data, so a file copied onto another name's file fails to decrypt.
 */
export class FileSecretStore implements SecretStore {
  private keyPromise: Promise<Buffer> | undefined;

  constructor(readonly dir: string) {}

  async put(name: string, value: string): Promise<void> {
    const file = this.fileFor(name);
    const key = await this.masterKey(name);
    try {
      await this.writeAtomically(file, encrypt(key, name, value), 'replace');
    } catch (err) {
      throw fileError(name, `cannot write secret ${name}`, err);
    }
  }

  async create(name: string, value: string): Promise<boolean> {
    const file = this.fileFor(name);
    const key = await this.masterKey(name);
    try {
      return await this.writeAtomically(file, encrypt(key, name, value), 'create');
    } catch (err) {
      throw fileError(name, `cannot write secret ${name}`, err);
    }
  }

  async get(name: string): Promise<string> {
    const file = this.fileFor(name);
    let data: Buffer;
    try {
      data = await readFile(join(this.dir, file));
    } catch (err) {
      if (hasCode(err, 'ENOENT')) throw new SecretNotFoundError(name, { cause: err });
      throw fileError(name, `cannot read secret ${name}`, err);
    }
    const key = await this.masterKey(name);
    try {
      return decrypt(key, name, data);
    } catch (err) {
      // The cause is the parser's or GCM's complaint; neither contains the plaintext.
      const message = `secret ${name} cannot be decrypted: its file is corrupt or not its own`;
      throw new SecretStoreError(name, message, { cause: err });
    }
  }

  async delete(name: string): Promise<void> {
    const file = this.fileFor(name);
    try {
      await unlink(join(this.dir, file));
      await syncDir(this.dir);
    } catch (err) {
      if (hasCode(err, 'ENOENT')) return;
      throw fileError(name, `cannot delete secret ${name}`, err);
    }
  }

  /**
   * Readiness: throws `SecretStoreUnavailableError` when the directory's disk has less room than a
   * handful of secrets need (a create would then fail half-way).
   */
  async checkSpace(): Promise<void> {
    const available = await availableBytes(this.dir);
    if (available !== undefined && available < MIN_FREE_BYTES) {
      throw new SecretStoreUnavailableError('(readiness check)', 'full');
    }
  }

  /**
   * The file name is a hash of the secret name, so no name can reach outside `dir`; odd names are still
   * rejected because they are bugs in the caller, and other stores (Secrets Manager) would refuse them.
   */
  private fileFor(name: string): string {
    const hasBadSegment = name.split('/').some((s) => s === '' || s === '.' || s === '..');
    if (hasBadSegment || CONTROL_CHARACTER.test(name)) {
      throw new SecretStoreError(name, `invalid secret name ${JSON.stringify(name)}`);
    }
    return `${createHash('sha256').update(name, 'utf8').digest('hex')}.secret`;
  }

  /** Loads the master key once per instance; a failed load is retried on the next call. */
  private masterKey(name: string): Promise<Buffer> {
    this.keyPromise ??= this.loadOrCreateKey().catch((err: unknown) => {
      this.keyPromise = undefined;
      throw err;
    });
    return this.keyPromise.catch((err: unknown) => {
      throw fileError(name, `cannot load the master key for secret ${name}`, err);
    });
  }

  private async loadOrCreateKey(): Promise<Buffer> {
    const path = join(this.dir, KEY_FILE);
    try {
      return checkKey(await readFile(path));
    } catch (err) {
      if (!hasCode(err, 'ENOENT')) throw err;
    }
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // 'create' never replaces an existing key: when two processes race, one key wins and both re-read it.
    await this.writeAtomically(KEY_FILE, randomBytes(KEY_BYTES), 'create');
    return checkKey(await readFile(path));
  }

  /**
   * Writes a temp file (0600, fsynced) and moves it into place, then fsyncs the directory, so a crash
   * leaves either the old file or the new one, never a torn one. 'replace' renames over the target;
   * 'create' hard-links instead, which fails with EEXIST rather than overwrite, and unlike an `wx` open
   * of the target never lets a racing reader see a half-written file.
   */
  private async writeAtomically(file: string, data: Buffer, mode: 'replace' | 'create'): Promise<boolean> {
    const temp = join(this.dir, `.${file}.${randomUUID()}.tmp`);
    const target = join(this.dir, file);
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      let written = true;
      if (mode === 'replace') {
        await rename(temp, target);
      } else {
        await link(temp, target).catch((err: unknown) => {
          if (!hasCode(err, 'EEXIST')) throw err;
          written = false;
        });
        await unlink(temp);
      }
      await syncDir(this.dir);
      return written;
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err;
    }
  }
}

function encrypt(key: Buffer, name: string, value: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(name, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.of(FORMAT_VERSION), iv, cipher.getAuthTag(), ciphertext]);
}

function decrypt(key: Buffer, name: string, data: Buffer): string {
  if (data.length < HEADER_BYTES || data[0] !== FORMAT_VERSION) {
    throw new Error(`unrecognised secret file format (${data.length} bytes)`);
  }
  const iv = data.subarray(1, 1 + IV_BYTES);
  const tag = data.subarray(1 + IV_BYTES, HEADER_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(name, 'utf8'));
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(data.subarray(HEADER_BYTES)), decipher.final()]).toString('utf8');
}

function checkKey(key: Buffer): Buffer {
  if (key.length !== KEY_BYTES) {
    throw new Error(`${KEY_FILE} holds ${key.length} bytes, expected ${KEY_BYTES}`);
  }
  return key;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function fileError(name: string, message: string, err: unknown): SecretStoreError {
  if (err instanceof SecretStoreError) return err;
  if (hasCode(err, 'ENOSPC') || hasCode(err, 'EDQUOT')) {
    return new SecretStoreUnavailableError(name, 'full', { cause: err });
  }
  if (hasCode(err, 'EIO') || hasCode(err, 'EROFS')) {
    return new SecretStoreUnavailableError(name, 'failing', { cause: err });
  }
  if (hasCode(err, 'EACCES') || hasCode(err, 'EPERM')) {
    return new SecretAccessDeniedError(name, { cause: err });
  }
  return new SecretStoreError(name, message, { cause: err });
}

function hasCode(err: unknown, code: string): boolean {
  return err instanceof Error && 'code' in err && err.code === code;
}

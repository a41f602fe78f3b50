/**
 * Customer keys made by OpenSSH's own ssh-keygen, with the options that make them expensive to
 * use: a passphrase and its bcrypt round count (`-a`), the file format (`-m PEM`, `-m PKCS8`).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface KeygenOptions {
  type: 'ed25519' | 'rsa' | 'ecdsa';
  bits?: number;
  passphrase?: string;
  /** bcrypt KDF rounds of an encrypted OpenSSH key (ssh-keygen's default is 16). */
  rounds?: number;
  format?: 'PEM' | 'PKCS8';
}

export async function keygen(options: KeygenOptions): Promise<{ privateKey: string; publicKey: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tk-keygen-'));
  try {
    const path = join(dir, 'key');
    const args = ['-q', '-t', options.type, '-N', options.passphrase ?? '', '-C', 'ops@customer', '-f', path];
    if (options.bits !== undefined) args.push('-b', String(options.bits));
    if (options.rounds !== undefined) args.push('-a', String(options.rounds));
    if (options.format !== undefined) args.push('-m', options.format);
    await run('ssh-keygen', args, { timeout: 120_000 });
    return {
      privateKey: await readFile(path, 'utf8'),
      publicKey: (await readFile(`${path}.pub`, 'utf8')).trim(),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A customer host for end-to-end tests: a throwaway Unix user whose home is a temp dir, so the
 * commands our API renders run verbatim (`sh -c`, `~` and known_hosts resolved from the passwd
 * entry as OpenSSH does; setting HOME alone would not do, see PITFALLS.md). Every process started
 * here gets its own process group and is killed by id on `dispose`, which then deletes the user.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Tunnel } from '../../shared/schemas';
import { waitFor, withTimeout } from './wait-for';

const OUTPUT_CAP = 1024 * 1024;

/** Throws (never skips) when a tool the end-to-end tests need is not installed. */
export function requireTools(...names: string[]): void {
  const missing = names.filter((name) => spawnSync('sh', ['-c', `command -v ${name}`]).status !== 0);
  if (missing.length > 0) {
    throw new Error(
      `end-to-end tests need ${missing.join(', ')} on PATH (Debian: openssh-client, autossh, ` +
        'postgresql, postgresql-client, passwd, util-linux, procps, cron, systemd, openssl; .ci/run installs them)',
    );
  }
  if (process.getuid?.() !== 0) {
    throw new Error('end-to-end tests create throwaway Unix users and must run as root (as CI does)');
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the process exited. */
  at: number;
}

/** A command running as the customer user, in its own process group. */
export interface CustomerProcess {
  readonly child: ChildProcess;
  readonly command: string;
  readonly startedAt: number;
  stdout(): string;
  stderr(): string;
  /** Resolves when the command (runuser, and with it `sh -c`) has exited. */
  readonly exited: Promise<Exit>;
  /** The exit once it happened, else undefined. */
  exit(): Exit | undefined;
  /** SIGKILL to the whole process group (runuser, sh, ssh, autossh). */
  kill(): void;
}

const run = (file: string, args: string[]) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(file, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });

/** useradd/userdel lock /etc/passwd: parallel test files may collide, so retry a few times. */
async function runWithLockRetry(file: string, args: string[]): Promise<void> {
  let last = '';
  for (let attempt = 1; attempt <= 10; attempt++) {
    const result = await run(file, args);
    if (result.code === 0) return;
    last = `${result.code}: ${result.stderr.trim()}`;
    if (!/lock|try again/i.test(result.stderr)) break;
    await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
  }
  throw new Error(`${file} ${args.join(' ')} failed (${last})`);
}

export class Customer {
  private readonly processes: CustomerProcess[] = [];

  private constructor(
    readonly user: string,
    readonly home: string,
    readonly uid: number,
    readonly gid: number,
  ) {}

  /** Creates the user with an empty `~/.ssh` (0700). */
  static async create(): Promise<Customer> {
    const home = await mkdtemp(join(tmpdir(), 'tk-customer-'));
    const user = `tkc${randomBytes(5).toString('hex')}`;
    try {
      await runWithLockRetry('useradd', ['-M', '-d', home, '-s', '/bin/sh', user]);
    } catch (err) {
      await rm(home, { recursive: true, force: true });
      throw err;
    }
    const ids = await run('id', ['-u', user]);
    const gids = await run('id', ['-g', user]);
    const customer = new Customer(user, home, Number(ids.stdout.trim()), Number(gids.stdout.trim()));
    try {
      await chown(home, customer.uid, customer.gid);
      await chmod(home, 0o700);
      await mkdir(join(home, '.ssh'), { mode: 0o700 });
      await chown(join(home, '.ssh'), customer.uid, customer.gid);
    } catch (err) {
      await customer.dispose();
      throw err;
    }
    return customer;
  }

  /** Writes a file under the home, owned by the user. */
  async writeFile(relativePath: string, content: string, mode = 0o600): Promise<string> {
    const path = join(this.home, relativePath);
    await writeFile(path, content, { mode });
    await chmod(path, mode);
    await chown(path, this.uid, this.gid);
    return path;
  }

  /** `~/.ssh/tunnelkeeper_<id>` (0600), where `reverse.commands` expect the key. */
  installKey(tunnelId: string, privateKey: string): Promise<string> {
    return this.writeFile(
      `.ssh/tunnelkeeper_${tunnelId}`,
      privateKey.endsWith('\n') ? privateKey : `${privateKey}\n`,
    );
  }

  /** `~/.ssh/known_hosts` with exactly these lines. */
  trustHosts(...knownHostsLines: string[]): Promise<string> {
    return this.writeFile('.ssh/known_hosts', `${knownHostsLines.join('\n')}\n`, 0o644);
  }

  /** Starts `sh -c <command>` as the user, verbatim. */
  start(command: string): CustomerProcess {
    const child = spawn('runuser', ['-u', this.user, '--', 'sh', '-c', command], {
      cwd: this.home,
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group: kill() reaches sh, ssh and autossh by the group id
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      if (stdout.length < OUTPUT_CAP) stdout += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (stderr.length < OUTPUT_CAP) stderr += chunk.toString();
    });
    let exit: Exit | undefined;
    const exited = new Promise<Exit>((resolve) => {
      child.once('close', (code, signal) => {
        exit = { code, signal, at: Date.now() };
        resolve(exit);
      });
      child.once('error', (err) => {
        stderr += `spawn failed: ${err.message}\n`;
        exit = { code: null, signal: null, at: Date.now() };
        resolve(exit);
      });
    });
    const proc: CustomerProcess = {
      child,
      command,
      startedAt: Date.now(),
      stdout: () => stdout,
      stderr: () => stderr,
      exited,
      exit: () => exit,
      kill: () => {
        if (exit || child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // the group is already gone
        }
      },
    };
    this.processes.push(proc);
    return proc;
  }

  /** Runs `sh -c <command>` as the user to completion (bounded by `timeoutMs`). */
  async exec(command: string, timeoutMs = 20_000): Promise<Exit & { stdout: string; stderr: string }> {
    const proc = this.start(command);
    try {
      const exit = await withTimeout(proc.exited, timeoutMs, `customer command ${command}`);
      return { ...exit, stdout: proc.stdout(), stderr: proc.stderr() };
    } catch (err) {
      proc.kill();
      throw err;
    }
  }

  /** Pids of the user's processes, optionally only those named exactly `name` (e.g. `ssh`). */
  async pids(name?: string): Promise<number[]> {
    const result = await run('pgrep', ['-u', this.user, ...(name ? ['-x', name] : [])]);
    return result.stdout
      .split('\n')
      .map((line) => Number(line.trim()))
      .filter((pid) => Number.isInteger(pid) && pid > 0);
  }

  /** The single process named `name` (waits for it to appear). */
  async pidOf(name: string, timeoutMs = 10_000): Promise<number> {
    return waitFor(
      async () => {
        const pids = await this.pids(name);
        return pids.length === 1 ? pids[0] : undefined;
      },
      timeoutMs,
      { what: `one ${name} process of ${this.user}` },
    );
  }

  /** Kills every process started here (and any the user still runs), deletes the user and its home. */
  async dispose(): Promise<void> {
    for (const proc of this.processes) proc.kill();
    await Promise.all(
      this.processes.map((proc) => withTimeout(proc.exited, 10_000, 'customer exit').catch(() => {})),
    );
    // Anything that left its group (none should) is still the throwaway user's: kill it by pid.
    let cleanupError: unknown;
    await waitFor(
      async () => {
        const left = await this.pids();
        for (const pid of left) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // exited meanwhile
          }
        }
        return left.length === 0;
      },
      10_000,
      { what: `no process left of ${this.user}` },
    ).catch((err: unknown) => {
      cleanupError = err;
    });
    await runWithLockRetry('userdel', [this.user]).catch((err: unknown) => {
      cleanupError ??= err;
    });
    await rm(this.home, { recursive: true, force: true });
    if (cleanupError) throw cleanupError;
  }
}

/**
 * A key pair made by `ssh-keygen`, as a customer would make it: OpenSSH private key and public line.
 * `bits` as `ssh-keygen -b` (RSA 3072 unless given; ECDSA 256, 384 or 521).
 */
export async function sshKeygen(
  type: 'ed25519' | 'rsa' | 'ecdsa' = 'ed25519',
  bits?: number,
): Promise<{
  privateKey: string;
  publicKey: string;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'tk-keygen-'));
  try {
    const path = join(dir, 'key');
    const args = ['-q', '-t', type, '-N', '', '-C', 'customer@e2e', '-f', path];
    if (bits !== undefined) args.push('-b', String(bits));
    else if (type === 'rsa') args.push('-b', '3072');
    const result = await run('ssh-keygen', args);
    if (result.code !== 0) throw new Error(`ssh-keygen failed: ${result.stderr}`);
    return {
      privateKey: await readFile(path, 'utf8'),
      publicKey: (await readFile(`${path}.pub`, 'utf8')).trim(),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A customer set up as CONTRACT.md says: the tunnel's key at `~/.ssh/tunnelkeeper_<id>`, the host key trusted. */
export async function customerFor(
  tunnel: { id: string; reverse?: { knownHostsLine: string } },
  privateKey: string,
): Promise<Customer> {
  if (!tunnel.reverse) throw new Error(`tunnel ${tunnel.id} is not a reverse tunnel`);
  const customer = await Customer.create();
  try {
    await customer.installKey(tunnel.id, privateKey);
    await customer.trustHosts(tunnel.reverse.knownHostsLine);
  } catch (err) {
    await customer.dispose();
    throw err;
  }
  return customer;
}

/**
 * A reverse tunnel to `service` created through `create` with a fresh customer key, and its
 * customer set up to run `reverse.commands` (the caller disposes of the customer).
 */
export async function reverseTunnelWithCustomer(
  create: (service: { host: string; port: number }, publicKey: string) => Promise<Tunnel>,
  service: { host: string; port: number },
): Promise<{ tunnel: Tunnel; reverse: NonNullable<Tunnel['reverse']>; customer: Customer }> {
  const key = await sshKeygen('ed25519');
  const tunnel = await create(service, key.publicKey);
  if (!tunnel.reverse) throw new Error(`tunnel ${tunnel.id} has no reverse block`);
  const customer = await customerFor(tunnel, key.privateKey);
  return { tunnel, reverse: tunnel.reverse, customer };
}

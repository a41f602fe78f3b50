/**
 * A customer's bastion for tests: a real OpenSSH sshd from Debian, started as a child process on a
 * loopback port with its own config, host key and authorized_keys, logging in a throwaway user.
 * It can be reconfigured (AllowTcpForwarding, PermitOpen...), restarted, or given a new host key.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../local/free-port';
import { waitFor } from './wait-for';

const SSHD = '/usr/sbin/sshd';

export interface BastionOptions {
  /** Extra sshd_config lines (e.g. `AllowTcpForwarding no`). */
  config?: string[];
  /** Gives the user this password and turns password authentication on. */
  password?: string;
}

export interface RestartOptions {
  /** Also end the sessions sshd holds (a reboot), not only the listener (a service restart). */
  dropSessions?: boolean;
}

let version: { major: number; minor: number } | undefined;

/** Throws (never skips) when Debian's sshd is missing. */
function requireSshd(): void {
  sshdVersion();
}

/** The sshd version (`OpenSSH_9.2p1` → 9, 2). */
function sshdVersion(): { major: number; minor: number } {
  if (version !== undefined) return version;
  let banner: string;
  try {
    // `sshd -V` prints its version on stderr.
    const result = spawnSync(SSHD, ['-V'], { encoding: 'utf8' });
    if (result.error) throw result.error;
    banner = `${result.stderr}${result.stdout}`;
  } catch {
    throw new Error(
      `${SSHD} is missing: the bastion tests need Debian's openssh-server (.ci/run installs it)`,
    );
  }
  const match = /OpenSSH_(\d+)\.(\d+)/.exec(banner);
  if (!match) throw new Error(`unexpected sshd -V output: ${banner}`);
  version = { major: Number(match[1]), minor: Number(match[2]) };
  return version;
}

function hasPerSourcePenalties(): boolean {
  const { major, minor } = sshdVersion();
  return major > 9 || (major === 9 && minor >= 8);
}

export class Bastion {
  readonly kind = 'openssh';
  private child: ChildProcess | undefined;
  private log = '';
  private extra: string[];

  private constructor(
    readonly dir: string,
    readonly user: string,
    readonly port: number,
    private readonly options: BastionOptions,
  ) {
    this.extra = options.config ?? [];
  }

  static async start(options: BastionOptions = {}): Promise<Bastion> {
    requireSshd();
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const dir = await mkdtemp(join(tmpdir(), 'tk-bastion-'));
    await chmod(dir, 0o755); // sshd reads authorized_keys as the user
    const user = `tkb${randomBytes(4).toString('hex')}`;
    execFileSync('useradd', ['-M', '-d', dir, '-s', '/bin/sh', user]);
    if (options.password) execFileSync('chpasswd', { input: `${user}:${options.password}\n` });
    else execFileSync('usermod', ['-p', '*', user]); // unlocked for key logins, no password
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_ed25519')]);
    await writeFile(join(dir, 'authorized_keys'), '', { mode: 0o644 });
    const bastion = new Bastion(dir, user, await freePort(), options);
    try {
      await bastion.run();
    } catch (err) {
      await bastion.dispose().catch(() => {}); // the user and the directory must not outlive a failed start
      throw err;
    }
    return bastion;
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The host key fingerprint as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint(): string {
    const out = execFileSync('ssh-keygen', ['-lf', join(this.dir, 'host_ed25519.pub')], { encoding: 'utf8' });
    return out.split(' ')[1] ?? '';
  }

  /** Authenticated sessions open now: each has one unprivileged process running as our user. */
  sessionCount(): number {
    // pgrep -c prints 0 (and exits 1) when nothing matches.
    const result = spawnSync('pgrep', ['-c', '-u', this.user], { encoding: 'utf8' });
    return Number(result.stdout.trim() || '0');
  }

  async setAuthorizedKeys(lines: string[]): Promise<void> {
    await writeFile(join(this.dir, 'authorized_keys'), lines.map((l) => `${l}\n`).join(''), { mode: 0o644 });
  }

  /** sshd's log so far (for assertions and failure messages). */
  output(): string {
    return this.log;
  }

  /** Restarts with other extra config lines (same port, host key and users). */
  async reconfigure(config: string[]): Promise<void> {
    this.extra = config;
    await this.restart();
  }

  /**
   * Restarts the listening sshd. Like `systemctl restart ssh`, that alone keeps the sessions it
   * forked; `dropSessions` also kills them, as a reboot or crash of the bastion would.
   */
  async restart(options: RestartOptions = {}): Promise<void> {
    await this.stop();
    if (options.dropSessions) await this.dropSessions();
    await this.run();
  }

  /** Replaces the host key (the bastion was rebuilt) and restarts. */
  async regenerateHostKey(options: RestartOptions = {}): Promise<void> {
    await rm(join(this.dir, 'host_ed25519'), { force: true });
    await rm(join(this.dir, 'host_ed25519.pub'), { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(this.dir, 'host_ed25519')]);
    await this.restart(options);
  }

  /**
   * Kills the per-connection processes of our user: each session's unprivileged child, after which
   * its root monitor exits and the TCP connection closes.
   */
  private async dropSessions(): Promise<void> {
    try {
      execFileSync('pkill', ['-KILL', '-u', this.user], { stdio: 'ignore' });
    } catch {
      return; // no sessions
    }
    await waitFor(
      () => {
        try {
          execFileSync('pgrep', ['-u', this.user], { stdio: 'ignore' });
          return false;
        } catch {
          return true; // pgrep exits 1 when nothing matches
        }
      },
      5_000,
      { what: `sessions of ${this.user} gone` },
    );
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
    // sshd forks a process per connection; those end with their sessions. Wait for the port to free.
    await waitFor(async () => !(await isListening(this.port)), 5_000, {
      what: `sshd on ${this.port} stopped`,
    });
  }

  async dispose(): Promise<void> {
    await this.stop();
    try {
      execFileSync('pkill', ['-u', this.user], { stdio: 'ignore' });
    } catch {
      // no processes left
    }
    try {
      execFileSync('userdel', [this.user], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  private async run(): Promise<void> {
    const config = [
      `Port ${this.port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(this.dir, 'host_ed25519')}`,
      `PidFile ${join(this.dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(this.dir, 'authorized_keys')}`,
      `AllowUsers ${this.user}`,
      'UsePAM no',
      'StrictModes no',
      `PasswordAuthentication ${this.options.password ? 'yes' : 'no'}`,
      'KbdInteractiveAuthentication no',
      'MaxStartups 200:30:400',
      'LogLevel VERBOSE',
      // OpenSSH >= 9.8 blocks a source after a few failed logins; every test client is 127.0.0.1.
      ...(hasPerSourcePenalties() ? ['PerSourcePenalties no'] : []),
      ...this.extra,
    ];
    const file = join(this.dir, 'sshd_config');
    await writeFile(file, `${config.join('\n')}\n`);
    const child = spawn(SSHD, ['-D', '-e', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let started = false;
    let early = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-200_000);
      if (!started) early += chunk.toString();
    });
    this.child = child;
    // sshd says so once it listens; probing with a connection instead would put one in its log,
    // and tests read that log to prove nobody connected.
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`sshd exited ${child.exitCode}: ${this.log}`);
        return early.includes(`Server listening on 127.0.0.1 port ${this.port}.`);
      },
      10_000,
      { what: `sshd listening on ${this.port}` },
    );
    started = true;
  }
}

function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

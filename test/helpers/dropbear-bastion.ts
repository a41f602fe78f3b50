/**
 * A customer's bastion running Dropbear (routers, NAS boxes, embedded Linux) for tests: Debian's
 * `dropbear` 2022.83 in the foreground on a loopback port, with its own host key, logging in a
 * throwaway user whose `~/.ssh/authorized_keys` the test writes. The counterpart of bastion.ts.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../local/free-port';
import { waitFor } from './wait-for';

const DROPBEAR = '/usr/sbin/dropbear';

/** What the standard-tunnel tests need of a bastion, whichever server it runs. */
export interface CustomerBastion {
  readonly kind: 'openssh' | 'dropbear';
  readonly port: number;
  readonly user: string;
  setAuthorizedKeys(lines: string[]): Promise<void>;
  /** The server's log so far. */
  output(): string;
  dispose(): Promise<void>;
}

export interface DropbearOptions {
  /** Extra server flags, e.g. `-k` (no remote port forwarding) or `-j` (no local). */
  flags?: string[];
}

/** Throws (never skips) when Debian's dropbear is missing. */
export function requireDropbear(): void {
  for (const tool of [DROPBEAR, '/usr/bin/dropbearkey']) {
    if (!existsSync(tool)) {
      throw new Error(
        `${tool} is missing: the Dropbear bastion tests need Debian's dropbear-bin (.ci/run installs it)`,
      );
    }
  }
}

export class DropbearBastion implements CustomerBastion {
  readonly kind = 'dropbear';
  private child: ChildProcess | undefined;
  private log = '';

  private constructor(
    readonly dir: string,
    readonly user: string,
    readonly port: number,
    private readonly uid: number,
    private readonly options: DropbearOptions,
  ) {}

  static async start(options: DropbearOptions = {}): Promise<DropbearBastion> {
    requireDropbear();
    const dir = await mkdtemp(join(tmpdir(), 'tk-dropbear-'));
    // Dropbear reads authorized_keys only when the home, ~/.ssh and the file belong to the user (or
    // root) and nobody else may write them.
    await chmod(dir, 0o755);
    const user = `tkd${randomBytes(4).toString('hex')}`;
    execFileSync('useradd', ['-M', '-d', dir, '-s', '/bin/sh', user]);
    execFileSync('usermod', ['-p', '*', user]); // unlocked for key logins, no password
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
    const bastion = new DropbearBastion(dir, user, await freePort(), uid, options);
    try {
      await mkdir(join(dir, '.ssh'), { mode: 0o700 });
      await chown(join(dir, '.ssh'), uid, -1);
      await bastion.setAuthorizedKeys([]);
      execFileSync('dropbearkey', ['-t', 'ed25519', '-f', join(dir, 'host_ed25519')], { stdio: 'ignore' });
      await bastion.run();
    } catch (err) {
      await bastion.dispose().catch(() => {}); // the user and the directory must not outlive a failed start
      throw err;
    }
    return bastion;
  }

  async setAuthorizedKeys(lines: string[]): Promise<void> {
    const file = join(this.dir, '.ssh', 'authorized_keys');
    await writeFile(file, lines.map((l) => `${l}\n`).join(''), { mode: 0o600 });
    await chown(file, this.uid, -1);
  }

  output(): string {
    return this.log;
  }

  async dispose(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      // Each connection is a forked child of the listener: end those first, then the listener.
      spawnSync('pkill', ['-KILL', '-P', String(child.pid)]);
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    spawnSync('pkill', ['-KILL', '-u', this.user]);
    spawnSync('userdel', [this.user]);
    await rm(this.dir, { recursive: true, force: true });
  }

  private async run(): Promise<void> {
    const args = [
      '-F', // foreground
      '-E', // log to stderr
      '-s', // no password logins
      '-p',
      `127.0.0.1:${this.port}`,
      '-r',
      join(this.dir, 'host_ed25519'),
      '-P',
      join(this.dir, 'dropbear.pid'),
      ...(this.options.flags ?? []),
    ];
    const child = spawn(DROPBEAR, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-200_000);
    });
    this.child = child;
    // Dropbear says so right after it bound its listening socket.
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`dropbear exited ${child.exitCode}: ${this.log}`);
        return this.log.includes('Not backgrounding');
      },
      10_000,
      { what: `dropbear listening on ${this.port}` },
    );
  }
}

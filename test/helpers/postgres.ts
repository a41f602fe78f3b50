/**
 * A throwaway PostgreSQL server from Debian's packages: initdb in a temp dir as the `postgres`
 * user (PostgreSQL refuses root), listening on 127.0.0.1 and a port the OS reported free.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../local/free-port';

const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface Postgres {
  port: number;
  dir: string;
  stop(): Promise<void>;
  /** Stops the server (a database that dies), keeping its data for `resume`. */
  pause(): Promise<void>;
  /** Starts it again on the same port. */
  resume(): Promise<void>;
}

const run = (file: string, args: string[], timeoutMs: number, cwd?: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(file, args, { timeout: timeoutMs, cwd }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });

async function idOf(flag: '-u' | '-g', user: string): Promise<number> {
  const result = await run('id', [flag, user], 5_000);
  if (result.code !== 0) throw new Error(`no ${user} user (install Debian's postgresql package)`);
  return Number(result.stdout.trim());
}

/** Throws (never skips) when the server binaries are missing. */
export function requirePostgres(): void {
  for (const tool of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(join(PG_BIN, tool))) {
      throw new Error(
        `PostgreSQL 15 server not found at ${PG_BIN}/${tool} (Debian: postgresql; .ci/run installs it)`,
      );
    }
  }
}

export async function startPostgres(): Promise<Postgres> {
  requirePostgres();
  const uid = await idOf('-u', 'postgres');
  const gid = await idOf('-g', 'postgres');
  const dir = await mkdtemp(join(tmpdir(), 'tk-pg-'));
  await chown(dir, uid, gid);
  const data = join(dir, 'data');
  const asPostgres = (tool: string, args: string[], timeoutMs: number) =>
    run('runuser', ['-u', 'postgres', '--', join(PG_BIN, tool), ...args], timeoutMs, dir);
  let started = false;
  const stop = async () => {
    if (started) await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop'], 20_000);
    started = false;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const init = await asPostgres(
      'initdb',
      ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync'],
      60_000,
    );
    if (init.code !== 0) throw new Error(`initdb failed: ${init.stderr}`);
    const port = await freePort();
    const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
    const start = async () => {
      started = true; // a half-started server is still stopped by stop()
      const result = await asPostgres(
        'pg_ctl',
        ['-D', data, '-o', options, '-l', join(dir, 'server.log'), '-w', '-t', '30', 'start'],
        40_000,
      );
      if (result.code !== 0) throw new Error(`pg_ctl start failed: ${result.stdout}${result.stderr}`);
    };
    const pause = async () => {
      const result = await asPostgres('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop'], 20_000);
      if (result.code !== 0) throw new Error(`pg_ctl stop failed: ${result.stdout}${result.stderr}`);
      started = false;
    };
    await start();
    return { port, dir, stop, pause, resume: start };
  } catch (err) {
    await stop();
    throw err;
  }
}

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { freePort } from '../../local/free-port';
import { withTimeout } from './wait-for';

/** A running `npm start`, with its JSON log lines as they arrive. */
export interface StartedStack {
  child: ChildProcess;
  baseUrl: string;
  lines: Record<string, unknown>[];
  output: string[];
  /** Resolves with the first log line matching `predicate`, or rejects at the deadline. */
  waitForLog(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs: number,
  ): Promise<Record<string, unknown>>;
  /** Sends `signal` and resolves once every process has exited: how long it took, and whether it logged `stopped`. */
  stop(signal?: NodeJS.Signals, target?: 'npm' | 'group'): Promise<{ ms: number; stopped: boolean }>;
}

const REPO_ROOT = new URL('../..', import.meta.url).pathname;

/** The arguments `npm start` (or `npm run <script>`) passes to node, read from package.json (the one place they are written). */
export async function startScriptNodeArgs(script: 'start' | 'gateway' = 'start'): Promise<string[]> {
  const pkg = JSON.parse(await readFile(`${REPO_ROOT}package.json`, 'utf8')) as {
    scripts?: Record<string, string>;
  };
  const [program, ...args] = (pkg.scripts?.[script] ?? '').split(/\s+/);
  if (program !== 'node')
    throw new Error(`npm ${script} does not run node directly: ${pkg.scripts?.[script]}`);
  return args;
}

/**
 * Runs `npm start` from the repository root with `env` on top of this process's environment.
 * `runner: 'node'` runs what `npm start` runs (its `node` command line, flags included) without npm,
 * so `child.pid` is the stack itself (to read its memory from /proc).
 */
export async function startStack(
  env: Record<string, string>,
  readyTimeoutMs = 30_000,
  runner: 'npm' | 'node' = 'npm',
  script: 'start' | 'gateway' = 'start',
): Promise<StartedStack> {
  const [command, args]: [string, string[]] =
    runner === 'npm'
      ? ['npm', script === 'start' ? ['start', '--silent'] : ['run', script, '--silent']]
      : [process.execPath, await startScriptNodeArgs(script)];
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: '0', SSH_PORT: String(await freePort()), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so cleanup can reach DynamoDB Local too
  });
  const lines: Record<string, unknown>[] = [];
  const output: string[] = [];
  const waiters = new Set<() => void>();
  const onLine = (line: string) => {
    output.push(line);
    try {
      const parsed: unknown = JSON.parse(line);
      if (parsed && typeof parsed === 'object') lines.push(parsed as Record<string, unknown>);
    } catch {
      // not a log line (npm or Node warnings)
    }
    for (const wake of waiters) wake();
  };
  if (child.stdout) createInterface({ input: child.stdout }).on('line', onLine);
  if (child.stderr) createInterface({ input: child.stderr }).on('line', onLine);

  const waitForLog: StartedStack['waitForLog'] = (predicate, timeoutMs) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const hit = lines.find(predicate);
        if (hit) {
          cleanup();
          resolve(hit);
        } else if (child.exitCode !== null) {
          cleanup();
          reject(new Error(`npm start exited (${child.exitCode}):\n${output.join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching log line within ${timeoutMs} ms:\n${output.join('\n')}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
        child.off('exit', check);
      };
      waiters.add(check);
      child.on('exit', check);
      check();
    });

  const outputClosed = Promise.all([
    child.stdout ? once(child.stdout, 'close') : Promise.resolve(),
    child.stderr ? once(child.stderr, 'close') : Promise.resolve(),
  ]);
  const stop: StartedStack['stop'] = async (signal = 'SIGTERM', target = 'npm') => {
    if (child.pid === undefined) throw new Error('npm start has no pid');
    const started = Date.now();
    // 'npm' signals npm alone (as a supervisor would); 'group' all of it (as a terminal's Ctrl-C does).
    process.kill(target === 'group' ? -child.pid : child.pid, signal);
    // Our pipes close once every process that writes to them (npm and the stack) has exited.
    await outputClosed;
    return { ms: Date.now() - started, stopped: lines.some((l) => l.msg === 'stopped') };
  };

  try {
    // `npm run gateway` serves no API: ready once its gateway is (baseUrl then names nothing).
    const ready = script === 'start' ? 'api listening' : 'gateway ready';
    const listening = await waitForLog((l) => l.msg === ready, readyTimeoutMs);
    return { child, baseUrl: `http://127.0.0.1:${listening.port}`, lines, output, waitForLog, stop };
  } catch (err) {
    killGroup(child);
    throw err;
  }
}

/** After a test: each stack asked to stop, then its process group killed whatever it answered. */
export async function disposeStacks(stacks: readonly StartedStack[]): Promise<void> {
  for (const stack of stacks) {
    await stack.stop('SIGTERM', 'group').catch(() => {});
    killGroup(stack.child);
  }
}

/** Last resort after a test: kill the whole process group (npm, tsx, node, java). */
export function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * SIGKILLs a started process (no state written, no listener closed politely: the kernel drops its
 * connections) and waits for it to exit; when it was killed (epoch ms), for bounds measured from it.
 */
export async function killStack(stack: Pick<StartedStack, 'child'>, name: string): Promise<number> {
  const pid = stack.child.pid;
  if (pid === undefined) throw new Error(`${name} has no pid`);
  const exited = once(stack.child, 'exit');
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  await withTimeout(exited, 10_000, `${name} exit after SIGKILL`);
  return killedAt;
}

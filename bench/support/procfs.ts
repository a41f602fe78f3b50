/** Memory of processes as Linux accounts it, read from /proc. */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Resident set size of one process, in bytes. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (!kb) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) * 1024;
}

/**
 * Proportional set size (shared pages divided among the processes sharing them), in bytes: the
 * fair measure for sshd, whose per-connection processes share most of their pages.
 */
export async function pssBytes(pid: number): Promise<number> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = /^Pss:\s+(\d+) kB$/m.exec(rollup)?.[1];
  if (!kb) throw new Error(`no Pss for process ${pid}`);
  return Number(kb) * 1024;
}

/** `pid` and all its descendants (a snapshot; processes may come and go meanwhile). */
export async function processTree(pid: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: fields start after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // exited while we looked
    }
  }
  const tree: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

/** Sum of the PSS of `pid` and every descendant; processes gone by the time they are read count 0. */
export async function treePssBytes(pid: number): Promise<{ bytes: number; processes: number }> {
  let bytes = 0;
  let processes = 0;
  for (const member of await processTree(pid)) {
    try {
      bytes += await pssBytes(member);
      processes++;
    } catch {
      // exited meanwhile
    }
  }
  return { bytes, processes };
}

/**
 * The open-files limit to give the processes the bench starts: `wanted`, or this process's hard
 * limit when that is lower (raising a hard limit needs CAP_SYS_RESOURCE, which a container may lack).
 */
export async function openFilesLimit(wanted: number): Promise<number> {
  const limits = await readFile('/proc/self/limits', 'utf8');
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(limits)?.[1];
  if (!hard || hard === 'unlimited') return wanted;
  return Math.min(wanted, Number(hard));
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux we run). */
const TICKS_PER_SECOND = 100;

/**
 * CPU seconds (user + system) of `pid` and its descendants so far, including children they have
 * reaped (sshd's per-connection processes end up in the listener's `cutime`/`cstime`).
 */
export async function treeCpuSeconds(pid: number): Promise<number> {
  let ticks = 0;
  for (const member of await processTree(pid)) {
    try {
      const stat = await readFile(`/proc/${member}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime, stime, cutime, cstime are fields 14–17 of stat(5), 12–15 after the command name.
      for (const index of [11, 12, 13, 14]) ticks += Number(fields[index] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return ticks / TICKS_PER_SECOND;
}

/** All cores' busy and total jiffies so far (the `cpu` line of /proc/stat; idle and iowait are not busy). */
async function machineTicks(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0] ?? '';
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((sum, n) => sum + n, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * Waits until the whole machine is quiet: less than `maxBusyShare` of all cores busy over a
 * `windowMs` window, or `timeoutMs` passed. The stack's periodic work (a sweep reads every tunnel
 * through DynamoDB Local, several CPU seconds at 2,000 tunnels) would otherwise land on whichever
 * transfer happens to run, ours or sshd's. Resolves with how long it waited.
 */
export async function quietMachine(timeoutMs: number, maxBusyShare = 0.15, windowMs = 300): Promise<number> {
  const started = Date.now();
  let previous = await machineTicks();
  while (Date.now() - started < timeoutMs) {
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const now = await machineTicks();
    const total = now.total - previous.total;
    if (total > 0 && (now.busy - previous.busy) / total < maxBusyShare) break;
    previous = now;
  }
  return Date.now() - started;
}

/** Descendants of this process whose command name (`/proc/<pid>/comm`) is `name`. */
export async function descendantsNamed(name: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await processTree(process.pid)) {
    try {
      if ((await readFile(`/proc/${pid}/comm`, 'utf8')).trim() === name) found.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/**
 * Sets the niceness of every thread of each of `pids` (Linux schedules threads: a process's
 * niceness is only its main thread's, and threads started earlier keep their own). Processes gone
 * meanwhile are skipped.
 */
export async function reniceThreads(pids: number[], niceness: number): Promise<void> {
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = await readdir(`/proc/${pid}/task`);
    } catch {
      continue; // exited
    }
    for (const tid of tids) {
      try {
        setPriority(Number(tid), niceness);
      } catch {
        // the thread ended meanwhile
      }
    }
  }
}

/** Pins every thread of each of `pids` to the CPUs in `cpuList` ("0", "1-3"; util-linux's taskset). */
export async function pinThreads(pids: number[], cpuList: string): Promise<void> {
  for (const pid of pids) await run('taskset', ['--all-tasks', '--pid', '--cpu-list', cpuList, String(pid)]);
}

/** SIGKILLs each of `pids` that still runs `name` (a pid may have been reused since it was read). */
export async function killIfNamed(pids: number[], name: string): Promise<void> {
  for (const pid of pids) {
    try {
      if ((await readFile(`/proc/${pid}/comm`, 'utf8')).trim() !== name) continue;
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/**
 * Waits until `pid` (and its descendants) use less than `maxCpuShare` of one core over a second,
 * or `timeoutMs` passed: lets the work one phase leaves behind (state writes, sweeps) finish
 * before the next phase measures. Resolves with how long it waited.
 */
export async function quiesce(pid: number, timeoutMs: number, maxCpuShare = 0.05): Promise<number> {
  const started = Date.now();
  let previous = await treeCpuSeconds(pid);
  while (Date.now() - started < timeoutMs) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const now = await treeCpuSeconds(pid);
    if (now - previous < maxCpuShare) break;
    previous = now;
  }
  return Date.now() - started;
}

/**
 * Makes sure this process may hold `needed` open files: raises its own soft limit (up to the hard
 * limit, with util-linux's prlimit) when it is lower. Throws, naming the limit, when even the hard
 * limit is too low.
 */
export async function ensureOwnOpenFiles(needed: number): Promise<void> {
  const read = async () => {
    const limits = await readFile('/proc/self/limits', 'utf8');
    const [, soft = '0', hard = '0'] = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits) ?? [];
    const value = (v: string) => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
    return { soft: value(soft), hard: value(hard), hardText: hard };
  };
  const before = await read();
  if (before.soft >= needed) return;
  if (before.hard < needed) {
    throw new Error(`this needs ${needed} open files, but the hard limit (ulimit -Hn) is ${before.hardText}`);
  }
  await run('prlimit', ['--pid', String(process.pid), `--nofile=${needed}:${before.hardText}`]);
  const after = await read();
  if (after.soft < needed)
    throw new Error(`could not raise the open-files limit to ${needed} (now ${after.soft})`);
}

/** Open file descriptors of `pid` now. */
export async function openFileCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

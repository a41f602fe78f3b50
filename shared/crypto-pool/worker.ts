/**
 * The worker side of a worker pool, in a child process of its own: validates each message, runs
 * the task synchronously (blocking this process is the point: it is not the event loop that
 * carries tunnel bytes), answers with a result or a failure that carries no secret material.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { ValidationError } from '../errors';
import { type FromWorker, type TaskFailure, ToWorkerSchema } from './protocol';

/** Runs one task; throws to fail it. */
export type TaskHandler = (payload: unknown) => unknown;

/** Turns a thrown error into what may cross to the pool; the default withholds messages. */
export type DescribeFailure = (err: unknown) => TaskFailure;

export function withheldFailure(err: unknown): TaskFailure {
  if (err instanceof ValidationError) return { kind: 'validation', issues: err.issues };
  // Library messages (OpenSSL, ssh2) may quote their input: only the class name crosses.
  return { kind: 'failed', name: err instanceof Error ? err.name : 'Error', message: 'the task failed' };
}

export function serveTasks(handlers: Record<string, TaskHandler>, describeFailure = withheldFailure): void {
  const send = process.send?.bind(process);
  if (!send) throw new Error('a pool worker runs as a child process with an IPC channel');
  const post = (message: FromWorker) => send(message);

  process.on('message', (message: unknown) => {
    const task = ToWorkerSchema.safeParse(message);
    if (!task.success) throw new Error('worker pool sent an unreadable message');
    const { id, kind, payload } = task.data;
    const handler = Object.hasOwn(handlers, kind) ? handlers[kind] : undefined;
    if (!handler) {
      post({
        type: 'result',
        id,
        ok: false,
        failure: { kind: 'failed', name: 'Error', message: `no task ${kind}` },
      });
      return;
    }
    try {
      post({ type: 'result', id, ok: true, value: handler(payload) });
    } catch (err) {
      post({ type: 'result', id, ok: false, failure: describeFailure(err) });
    }
  });
  // The pool went away (ended, or killed): nothing will ask for work again.
  process.on('disconnect', () => process.exit(0));
  post({ type: 'ready', pid: process.pid });
}

/**
 * Lowest CPU priority for every thread of this process (the main one, V8's garbage collector
 * helpers, libuv's pool; threads started later inherit it): when worker and event loop want the
 * same core, the event loop that carries tunnel bytes and answers /healthz goes first.
 * Nice 19 alone loses on a machine with few cores: the kernel places a waking thread on an idle
 * core, and a core running a nice-19 thread is not idle, so the event loop queued behind other
 * processes on the other core while a worker had a core to itself (measured: the event loop
 * waited ~20% of a burst). A SCHED_IDLE thread's core counts as idle, and any other thread
 * preempts it at once. Node has no call for the policy: util-linux's chrt sets it.
 */
export function lowerOwnPriority(): void {
  // Linux keeps a nice value per thread: each one by its id.
  for (const tid of threadIds()) {
    try {
      setPriority(tid, 19);
    } catch {
      // Not permitted here (or the thread ended): the worker still keeps the work off the loop.
    }
  }
  try {
    execFileSync('chrt', ['--all-tasks', '--idle', '--pid', '0', String(process.pid)], {
      stdio: 'ignore',
      timeout: 5_000,
    });
  } catch {
    // No chrt, or not Linux: nice 19 still applies.
  }
}

function threadIds(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number);
  } catch {
    return [process.pid];
  }
}

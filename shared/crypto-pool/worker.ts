/**
 * The thread side of a worker pool: validates each message, runs the task synchronously (blocking
 * this thread is the point: it is not the event loop that carries tunnel bytes), answers with a
 * result or a failure that carries no secret material.
 */
import { stat } from 'node:fs/promises';
import { getPriority, setPriority } from 'node:os';
import { type MessagePort, threadId } from 'node:worker_threads';
import { ValidationError } from '../errors';
import { type FromWorker, PoolWorkerDataSchema, type TaskFailure, ToWorkerSchema } from './protocol';

/** Runs one task; throws to fail it. */
export type TaskHandler = (payload: unknown) => unknown;

/** Turns a thrown error into what may cross to the main thread; the default withholds messages. */
export type DescribeFailure = (err: unknown) => TaskFailure;

export function withheldFailure(err: unknown): TaskFailure {
  if (err instanceof ValidationError) return { kind: 'validation', issues: err.issues };
  // Library messages (OpenSSL, ssh2) may quote their input: only the class name crosses.
  return { kind: 'failed', name: err instanceof Error ? err.name : 'Error', message: 'the task failed' };
}

export async function serveTasks(
  port: MessagePort,
  workerData: unknown,
  handlers: Record<string, TaskHandler>,
  describeFailure: DescribeFailure = withheldFailure,
): Promise<void> {
  const parsed = PoolWorkerDataSchema.safeParse(workerData);
  if (!parsed.success) {
    // A ZodError does not survive the trip to the main thread: say it plainly.
    throw new Error(`invalid worker data: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  await lowerPriority(parsed.data.niceness);
  const post = (message: FromWorker) => port.postMessage(message);

  port.on('message', (message: unknown) => {
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
  post({ type: 'ready', threadId, niceness: getPriority() });
}

/**
 * On Linux the nice value belongs to the thread, so this thread alone yields the CPU to the event
 * loop (and to ssh, DynamoDB, everything else on the machine) when they compete. Threads inherit
 * it when they are created: libuv's shared pool must exist before, or its threads (file and DNS
 * work of the whole process) would start niced; one async fs call makes sure it does.
 */
async function lowerPriority(niceness: number): Promise<void> {
  if (niceness === 0) return;
  await stat('.').catch(() => undefined);
  try {
    setPriority(niceness);
  } catch {
    // Not permitted here (some sandboxes): the pool still bounds how many threads compete.
  }
}

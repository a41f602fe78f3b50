/**
 * The thread side of a worker pool: validates each message, runs the task synchronously (blocking
 * this thread is the point: it is not the event loop that carries tunnel bytes), answers with a
 * result or a failure that carries no secret material.
 */
import { type MessagePort, threadId } from 'node:worker_threads';
import { ValidationError } from '../errors';
import { type FromWorker, type TaskFailure, ToWorkerSchema } from './protocol';

/** Runs one task; throws to fail it. */
export type TaskHandler = (payload: unknown) => unknown;

/** Turns a thrown error into what may cross to the main thread; the default withholds messages. */
export type DescribeFailure = (err: unknown) => TaskFailure;

export function withheldFailure(err: unknown): TaskFailure {
  if (err instanceof ValidationError) return { kind: 'validation', issues: err.issues };
  // Library messages (OpenSSL, ssh2) may quote their input: only the class name crosses.
  return { kind: 'failed', name: err instanceof Error ? err.name : 'Error', message: 'the task failed' };
}

export function serveTasks(
  port: MessagePort,
  handlers: Record<string, TaskHandler>,
  describeFailure: DescribeFailure = withheldFailure,
): void {
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
  post({ type: 'ready', threadId });
}

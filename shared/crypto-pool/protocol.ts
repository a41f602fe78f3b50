/**
 * The messages between a worker pool and its workers, checked with zod on both sides of the
 * boundary. The envelope is generic (a task id, a kind, a payload); each kind's payload and result
 * are validated by the code that knows the kind (tasks.ts in the worker, the typed caller here).
 */
import { z } from 'zod';

/** Pool to worker: one task at a time per worker. */
export const ToWorkerSchema = z.object({
  type: z.literal('task'),
  id: z.number().int().nonnegative(),
  kind: z.string().min(1),
  payload: z.unknown(),
});
export type ToWorker = z.infer<typeof ToWorkerSchema>;

/**
 * How a task failed. `validation` carries field issues for the API's 422 (customer-facing text,
 * never key material); `failed` only an error name and a message from a known-safe error class.
 */
export const TaskFailureSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('validation'),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).min(1),
  }),
  z.object({ kind: z.literal('failed'), name: z.string(), message: z.string() }),
]);
export type TaskFailure = z.infer<typeof TaskFailureSchema>;

/** Worker to pool: `ready` once after start-up, then one `result` per task. */
export const FromWorkerSchema = z.union([
  z.object({ type: z.literal('ready'), pid: z.number().int().positive() }),
  z.object({ type: z.literal('result'), id: z.number().int(), ok: z.literal(true), value: z.unknown() }),
  z.object({
    type: z.literal('result'),
    id: z.number().int(),
    ok: z.literal(false),
    failure: TaskFailureSchema,
  }),
]);
export type FromWorker = z.infer<typeof FromWorkerSchema>;

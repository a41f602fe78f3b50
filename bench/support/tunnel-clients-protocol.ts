/** Messages between the bench and its ssh2 customer process (`tunnel-clients-worker.ts`). */
import { z } from 'zod';

export const SshTargetSchema = z.object({
  host: z.string(),
  port: z.number().int(),
  /** The server's host key blob, base64 (as in a known_hosts line): checked, never trusted blindly. */
  hostKey: z.string(),
  privateKey: z.string(),
});
export type SshTarget = z.infer<typeof SshTargetSchema>;

/** One reverse tunnel: log in as `username`, then ask for `tcpip-forward` of bindAddr:bindPort. */
export const ForwardSessionSchema = z.object({
  username: z.string(),
  bindAddr: z.string(),
  bindPort: z.number().int(),
});
export type ForwardSession = z.infer<typeof ForwardSessionSchema>;

export const RequestSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('open'),
    id: z.number(),
    group: z.string(),
    target: SshTargetSchema,
    sessions: z.array(ForwardSessionSchema),
    concurrency: z.number().int().min(1),
    timeoutMs: z.number().int().min(1),
  }),
  z.object({ type: z.literal('close'), id: z.number(), group: z.string(), timeoutMs: z.number().int() }),
  z.object({
    type: z.literal('login-rate'),
    id: z.number(),
    target: SshTargetSchema,
    /** One per concurrent login loop (each loop logs in again and again as its session). */
    sessions: z.array(ForwardSessionSchema),
    ladder: z.array(z.number().int().min(1)),
    stepMs: z.number().int().min(100),
    timeoutMs: z.number().int().min(1),
    /** Key exchange methods to offer, in order (ssh2's defaults when absent). */
    kex: z.array(z.string()).min(1).optional(),
  }),
]);
export type Request = z.infer<typeof RequestSchema>;

export const OpenResultSchema = z.object({
  opened: z.number(),
  failed: z.number(),
  errors: z.array(z.string()),
  ms: z.number(),
});
export type OpenResult = z.infer<typeof OpenResultSchema>;

export const LoginStepSchema = z.object({
  concurrency: z.number(),
  completed: z.number(),
  failed: z.number(),
  ms: z.number(),
  perSecond: z.number(),
  /** Connect to forward granted, per session. */
  medianMs: z.number(),
  p99Ms: z.number(),
  errors: z.array(z.string()),
});
export type LoginStep = z.infer<typeof LoginStepSchema>;

export const ResponseSchema = z.object({
  id: z.number(),
  ok: z.boolean(),
  error: z.string().optional(),
  result: z.unknown().optional(),
});

/**
 * Items the gateway workers write: a tunnel's connection state (on transitions only) and one
 * heartbeat per worker. The status machine and the API read them; zod checks them on read.
 */
import { z } from 'zod';
import { StatusErrorSchema } from './schemas';

/** `TUNNEL#<id>/STATE`, written by the worker holding the tunnel's connection. */
export const TunnelStateItemSchema = z.object({
  state: z.enum(['up', 'down']),
  /** When this state began. */
  since: z.string(),
  lastSeenAt: z.string().optional(),
  /** Worker id of the writer; its heartbeat tells whether the state is still true. */
  owner: z.string().optional(),
  /** The connection that wrote it (for logs and support). */
  connId: z.string().optional(),
  /** The connection this one replaced without a gap (a takeover, a key switch): no flap happened. */
  continues: z.string().optional(),
  /** Start of that connection (reverse) or of the worker's lease (standard): newer beats older. */
  connectedAt: z.string().optional(),
  /** Where workloads reach the service through this worker (its listener address). */
  connectHost: z.string().optional(),
  /** Fingerprint of the key the connection authenticated with (tells a rotation's progress). */
  keyFingerprint: z.string().optional(),
  error: StatusErrorSchema.optional(),
  /**
   * The newest `down` written to this item, kept (by the store) when later states overwrite it: a
   * reconnect between two sweeps would otherwise erase when and why the tunnel dropped.
   */
  lastDown: z
    .object({ since: z.string(), connId: z.string().optional(), error: StatusErrorSchema.optional() })
    .optional(),
});
export type TunnelStateItem = z.infer<typeof TunnelStateItemSchema>;

/** `WORKER#<id>/META`: one per worker every `HEARTBEAT_INTERVAL_MS`, whatever its tunnel count. */
export const WorkerHeartbeatSchema = z.object({
  workerId: z.string(),
  lastBeatAt: z.string(),
  startedAt: z.string(),
  /** Address other components use to reach this worker (listeners, control endpoint). */
  address: z.string(),
  version: z.string(),
  /** The worker's internal control endpoint (diagnostics), reachable only inside the VPC. */
  controlUrl: z.string().optional(),
  counts: z.object({ reverse: z.number().int(), standard: z.number().int() }),
});
export type WorkerHeartbeat = z.infer<typeof WorkerHeartbeatSchema>;

/** `TUNNEL#<id>/LEASE`: which worker serves a standard tunnel. Valid while the owner's heartbeat is fresh. */
export const LeaseItemSchema = z.object({ owner: z.string(), claimedAt: z.string() });
export type LeaseItem = z.infer<typeof LeaseItemSchema>;

/**
 * Items the gateway workers write: a tunnel's connection state (on transitions only) and one
 * heartbeat per worker. The status machine and the API read them; zod checks them on read.
 */
import { z } from 'zod';
import { DownCauseSchema, StatusErrorSchema } from './schemas';

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
  /**
   * Reverse: the service tag in the bind address of the session's `-R` (command-tag.ts); absent
   * when its command carries none. Tells whether the customer runs the current command.
   */
  commandTag: z.string().optional(),
  error: StatusErrorSchema.optional(),
  /** `restart`: the worker shut down cleanly (a deploy or a restart) and handed the tunnel over. */
  cause: DownCauseSchema.optional(),
  /**
   * The newest `down` written to this item, kept (by the store) when later states overwrite it: a
   * reconnect between two sweeps would otherwise erase when and why the tunnel dropped.
   */
  lastDown: z
    .object({
      since: z.string(),
      connId: z.string().optional(),
      error: StatusErrorSchema.optional(),
      cause: DownCauseSchema.optional(),
    })
    .optional(),
  /**
   * Bumped by the store on every write: a reader that records a transition from this item makes
   * its write conditional on the revision it read, so it never records one from a state since gone.
   */
  rev: z.number().int().min(0).optional(),
});
export type TunnelStateItem = z.infer<typeof TunnelStateItemSchema>;

/** Prefixes of the STATE item's attributes that hold a further connector's state and its newest down. */
const CONNECTOR_STATE = 'connector_';
const CONNECTOR_LAST_DOWN = 'connectorDown_';

/** The STATE item as read: the primary connector's state (its own fields) and further connectors'. */
export interface StateItemRead {
  primary?: TunnelStateItem;
  /** Further connectors' states by connector id (connectors.ts), each with its newest down. */
  others?: Record<string, TunnelStateItem>;
  /** The item's revision, which every connector's write bumps. */
  rev?: number;
}

/** Reads a STATE item; a zod error when any part of it does not parse. */
export function parseStateItem(
  raw: Record<string, unknown>,
): { ok: true; read: StateItemRead } | { ok: false; error: z.ZodError } {
  const read: StateItemRead = {};
  const others: Record<string, TunnelStateItem> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (!name.startsWith(CONNECTOR_STATE)) continue;
    const id = name.slice(CONNECTOR_STATE.length);
    const entry = asObject(value);
    const lastDown = raw[`${CONNECTOR_LAST_DOWN}${id}`];
    if (lastDown !== undefined) entry.lastDown = lastDown;
    const parsed = TunnelStateItemSchema.safeParse(entry);
    if (!parsed.success) return { ok: false, error: parsed.error };
    others[id] = parsed.data;
  }
  // Only further connectors have written: the primary never connected.
  if (raw.state !== undefined) {
    const primary = TunnelStateItemSchema.safeParse(raw);
    if (!primary.success) return { ok: false, error: primary.error };
    read.primary = primary.data;
  }
  if (Object.keys(others).length > 0) read.others = others;
  const rev = z.number().int().safeParse(raw.rev);
  if (rev.success) read.rev = rev.data;
  return { ok: true, read };
}

/** The attribute names a further connector's state and newest down are stored under. */
export const connectorStateAttributes = (connectorId: string): { state: string; lastDown: string } => ({
  state: `${CONNECTOR_STATE}${connectorId}`,
  lastDown: `${CONNECTOR_LAST_DOWN}${connectorId}`,
});

function asObject(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? { ...value } : {};
}

/** What a `down` leaves behind as its item's `lastDown` once later states are written over it. */
export function lastDownOf(down: TunnelStateItem): NonNullable<TunnelStateItem['lastDown']> {
  const lastDown: NonNullable<TunnelStateItem['lastDown']> = { since: down.since };
  if (down.connId !== undefined) lastDown.connId = down.connId;
  if (down.error !== undefined) lastDown.error = down.error;
  if (down.cause !== undefined) lastDown.cause = down.cause;
  return lastDown;
}

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
  /** Set by the worker's clean shutdown: from then on it serves nothing. */
  stoppedAt: z.string().optional(),
  /**
   * The revision of each `CARRIES#<nn>` item (worker-carries.ts), in shard order; `''` for a shard
   * that carries nothing. Peers read a shard again only when its revision changed.
   */
  carries: z.array(z.string()).optional(),
  /** What gateways before the CARRIES items advertised inline (read during a rolling deploy). */
  holds: z.array(z.tuple([z.string(), z.number().int()])).optional(),
});
export type WorkerHeartbeat = z.infer<typeof WorkerHeartbeatSchema>;

/**
 * `WORKER#<id>/CARRIES#<nn>`: one shard of the reverse tunnels this worker carries through customer
 * sessions of its own, with their ports: the other workers listen on those ports too and relay to
 * it (fargate/peers/). Written only when the shard changed, so idle tunnels cost no write.
 */
export const WorkerCarriesSchema = z.object({
  workerId: z.string(),
  shard: z.number().int().min(0),
  rev: z.string(),
  holds: z.array(z.tuple([z.string(), z.number().int()])),
  writtenAt: z.string(),
});
export type WorkerCarries = z.infer<typeof WorkerCarriesSchema>;

/**
 * `WORKER#<id>/TRAFFIC`: connections and bytes per tunnel this worker serves, since it began serving
 * each (`[sinceMs, connections, open, bytesToService, bytesFromService]`), for `status.traffic`.
 * Written with a heartbeat only when a figure changed, and apart from the heartbeat item so the
 * index that lists workers does not copy it: steady, idle tunnels cost no write at all.
 */
export const WorkerTrafficSchema = z.object({
  workerId: z.string(),
  reportedAt: z.string(),
  tunnels: z.record(
    z.string(),
    z.tuple([z.number(), z.number().int(), z.number().int(), z.number(), z.number()]),
  ),
});
export type WorkerTraffic = z.infer<typeof WorkerTrafficSchema>;

/** `TUNNEL#<id>/LEASE`: which worker serves a standard tunnel. Valid while the owner's heartbeat is fresh. */
export const LeaseItemSchema = z.object({
  owner: z.string(),
  claimedAt: z.string(),
  /**
   * Set by an owner that is stopping or rebalancing: the connection it still serves, which the
   * worker that claims the lease next continues (make-before-break: the owner serves until then).
   */
  handingOver: z.string().optional(),
});
export type LeaseItem = z.infer<typeof LeaseItemSchema>;

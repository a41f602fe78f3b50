/**
 * Items the sweeper writes: a tunnel's derived status (`TUNNEL#<id>/STATUS`) with its open incident
 * and its alert outbox, and the status history (`TUNNEL#<id>/EVENT#...`). zod checks them on read.
 */
import { z } from 'zod';
import { AlertSchema, StatusErrorSchema, TunnelStateNameSchema } from './schemas';
import { UptimeLedgerSchema } from './uptime';

/** Status events are kept this long, then DynamoDB's TTL deletes them. */
export const EVENT_RETENTION_DAYS = 30;

/**
 * What the status machine remembers between runs: the status it last recorded, which STATE item
 * that status came from, and the open incident. `evaluateStatus` reads and returns this shape.
 */
export const StatusRecordSchema = z.object({
  state: TunnelStateNameSchema,
  since: z.string(),
  lastSeenAt: z.string().optional(),
  error: StatusErrorSchema.optional(),
  /**
   * The STATE item the status was derived from and its connection: a later item of another
   * connection tells that the tunnel went through the opposite state between two runs.
   */
  source: z
    .object({ state: z.enum(['up', 'down']), since: z.string(), connId: z.string().optional() })
    .optional(),
  /** Open while the tunnel is down (or disabled after a `tunnel.down` was sent). */
  incident: z
    .object({
      /** When the down began; also the incident's id. */
      since: z.string(),
      /** A `tunnel.down` was queued for this incident, so its end owes a `tunnel.up`. */
      alerted: z.boolean(),
      /** When the `tunnel.down` was queued: alert channels created after it never hear of this incident. */
      alertedAt: z.string().optional(),
    })
    .optional(),
});
export type StatusRecord = z.infer<typeof StatusRecordSchema>;

/** One sink's progress on one alert. */
export const SinkDeliverySchema = z.object({
  state: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number().int().min(0),
  /** Not before this time (epoch ms): the backoff after a failed attempt. */
  nextAttemptAt: z.number().optional(),
  lastError: z.string().optional(),
  deliveredAt: z.string().optional(),
});
export type SinkDelivery = z.infer<typeof SinkDeliverySchema>;

/** An alert waiting in the STATUS item's outbox until every sink has it or its deadline passes. */
export const OutboxAlertSchema = z.object({
  /** Deterministic (`<tunnel id>:<type>@<incident since>`): racing sweepers name the same alert alike. */
  id: z.string(),
  body: AlertSchema,
  createdAt: z.string(),
  /** Epoch ms after which pending sinks give up. */
  deadline: z.number(),
  /** Bumped by every settle; a claim names the revision it read, so a stale read cannot claim. */
  rev: z.number().int().min(0),
  sinks: z.record(z.string(), SinkDeliverySchema),
  /** Held by the sweeper delivering it; `until` (epoch ms) lets another take over after a crash. */
  claim: z.object({ by: z.string(), until: z.number() }).optional(),
});
export type OutboxAlert = z.infer<typeof OutboxAlertSchema>;

/** `TUNNEL#<id>/STATUS`: the record plus its optimistic-concurrency version and the outbox. */
export const StatusItemSchema = StatusRecordSchema.extend({
  /** The non-up spans of the last 30 days behind `status.uptime` (uptime.ts); absent on items written before it. */
  uptime: UptimeLedgerSchema.optional(),
  version: z.number().int().min(1),
  updatedAt: z.string(),
  alerts: z.record(z.string(), OutboxAlertSchema),
  /** When the status may next change by time alone (status-wake.ts); the wake index lists it then. */
  wakeAt: z.number().optional(),
});
export type StatusItem = z.infer<typeof StatusItemSchema>;

/**
 * Sort key of an event: time first so a query newest-first is the history; then the STATUS
 * version that recorded it and its index in that write, so events of one instant keep their order
 * and a retried write names the same item.
 */
export function eventSortKey(at: string, version: number, index: number): string {
  return `EVENT#${at}#${String(version).padStart(10, '0')}.${index}`;
}

/** TTL attribute value (epoch seconds) of an event recorded at `now`. */
export function eventExpiresAt(now: Date): number {
  return Math.floor(now.getTime() / 1000) + EVENT_RETENTION_DAYS * 24 * 60 * 60;
}

/**
 * `TUNNEL#<id>/SIGNALS`: what the gateways saw of a tunnel besides its connection state, kept for
 * the status warnings (status-warnings.ts): the latest refused login, logins taking over from each
 * other, and whether the latest real connection through the tunnel reached the service. Written by
 * the gateways when a signal changes (coalesced per tunnel, fargate/signals/), read by the API with
 * the STATE and STATUS items, deleted with the tunnel. Warnings never page: the sweeper ignores
 * this item. Each field is written on its own, so gateways recording different signals of one
 * tunnel never overwrite each other.
 */
import { z } from 'zod';

/** Takeovers are counted over this window... */
export const CONTENTION_WINDOW_MS = 60_000;
/** ...and this many in it (more than 3 a minute) is contention, not a customer's autossh reconnecting. */
export const CONTENTION_TAKEOVERS = 4;
/** The contention warning clears once no takeover has been recorded for this long. */
export const CONTENTION_QUIET_MS = 120_000;
/** A gateway records the takeovers of a contention that goes on at most this often (its `lastAt`). */
export const CONTENTION_REFRESH_MS = 30_000;
/** The same refusal again (same key, source and reason) is recorded again after this long at most. */
export const LOGIN_REFUSAL_REFRESH_MS = 300_000;
/** Sources named in a contention warning. */
export const MAX_CONTENTION_SOURCES = 8;
/** Length of free text kept from a client (a failure message). */
export const MAX_SIGNAL_TEXT = 200;

/** Why a login was refused, for the hint: each kind has its own fix. */
export const LoginRefusalKindSchema = z.enum([
  'wrong_key',
  'bad_signature',
  'method',
  'disabled',
  'too_many_sessions',
]);
export type LoginRefusalKind = z.infer<typeof LoginRefusalKindSchema>;

export const LoginRefusedSignalSchema = z.object({
  /** The first of these refusals in a row (same key, source and reason), as its gateway saw it. */
  since: z.string(),
  /** When it was last recorded: a login of the tunnel that succeeds later clears the warning. */
  at: z.string(),
  kind: LoginRefusalKindSchema,
  /** Our log's reason, e.g. "key is not the tunnel's key". */
  reason: z.string(),
  /** The client's address. */
  source: z.string(),
  /** SSH authentication method (`publickey`, `password`, ...). */
  method: z.string(),
  /** Fingerprint (`SHA256:...`) of the key the client offered, for public-key attempts. */
  keyFingerprint: z.string().optional(),
});
export type LoginRefusedSignal = z.infer<typeof LoginRefusedSignalSchema>;

export const ContentionSignalSchema = z.object({
  /** When this contention began (the takeover that crossed the threshold). */
  since: z.string(),
  /** The latest takeover recorded (at most CONTENTION_REFRESH_MS behind the latest seen). */
  lastAt: z.string(),
  /** Takeovers within CONTENTION_WINDOW_MS before `lastAt`. */
  takeovers: z.number().int().min(0),
  /** Addresses of the sessions that took over from each other, most recent first. */
  sources: z.array(z.string()).max(MAX_CONTENTION_SOURCES),
});
export type ContentionSignal = z.infer<typeof ContentionSignalSchema>;

export const ServiceSignalSchema = z.object({
  /** Whether the latest real connection through the tunnel reached the service. */
  reachable: z.boolean(),
  /** Since when: the first outcome of this kind after one of the other. */
  since: z.string(),
  /** The failure as the bastion or the customer's client reported it ("Connection refused"). */
  message: z.string().optional(),
});
export type ServiceSignal = z.infer<typeof ServiceSignalSchema>;

export const TunnelSignalsSchema = z.object({
  loginRefused: LoginRefusedSignalSchema.optional(),
  contention: ContentionSignalSchema.optional(),
  service: ServiceSignalSchema.optional(),
});
export type TunnelSignals = z.infer<typeof TunnelSignalsSchema>;
export type TunnelSignalName = keyof TunnelSignals;

/**
 * Alert channels (CONTRACT.md, Extensions): a workspace's own destinations for its tunnels' alerts.
 * The request and response shapes of `/v1/alert-channels`, and the stored item they come from.
 */
import { randomBytes } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import { MAX_URL_LENGTH } from '../outbound-url';
import { NameSchema } from '../schemas';

/** `ach_` + 16 base32 characters. */
export const CHANNEL_ID_PATTERN = /^ach_[a-z2-7]{16}$/;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
export const newChannelId = (): string =>
  `ach_${Array.from(randomBytes(16), (b) => BASE32[b & 31]).join('')}`;

/**
 * A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes, the HMAC key
 * receivers' libraries decode (standardwebhooks, svix).
 */
export const newWebhookSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`;

/** Tunnels a channel is narrowed to; at most this many (more: one channel without `tunnelIds`). */
export const MAX_CHANNEL_TUNNELS = 100;

const UrlSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_URL_LENGTH, `must be at most ${MAX_URL_LENGTH} characters`)
  .openapi({ example: 'https://hooks.example.com/tunnelkeeper' });

const TunnelIdsSchema = z
  .array(z.string().regex(/^tun_[a-z2-7]{16}$/, 'is not a tunnel id'))
  .min(1, 'must name at least one tunnel (leave it out for all of the workspace)')
  .max(MAX_CHANNEL_TUNNELS, `must name at most ${MAX_CHANNEL_TUNNELS} tunnels`)
  .optional()
  .openapi({ description: 'Only these tunnels alert here; absent: every tunnel of the workspace' });

export const CreateAlertChannelSchema = z
  .discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('webhook'),
      name: NameSchema,
      url: UrlSchema,
      tunnelIds: TunnelIdsSchema,
    }),
    z.strictObject({
      type: z.literal('slack'),
      name: NameSchema,
      url: UrlSchema,
      tunnelIds: TunnelIdsSchema,
    }),
    z.strictObject({
      type: z.literal('pagerduty'),
      name: NameSchema,
      routingKey: z
        .string()
        .regex(
          /^[A-Za-z0-9_-]{8,128}$/,
          'must be a PagerDuty integration (routing) key: 8-128 letters and digits',
        ),
      tunnelIds: TunnelIdsSchema,
    }),
  ])
  .openapi('CreateAlertChannel');
export type CreateAlertChannel = z.infer<typeof CreateAlertChannelSchema>;

/**
 * What a channel sends with: the webhook's Standard Webhooks signing secret, the Slack
 * incoming-webhook URL, the PagerDuty routing key. Kept in the table only sealed
 * (sealed-credentials.ts); in clear only in memory, while a request is made.
 */
export const ChannelCredentialsSchema = z.strictObject({
  /** webhook. */
  secret: z.string().optional(),
  /** slack: the incoming-webhook URL (its path is the credential). */
  url: z.string().optional(),
  /** pagerduty. */
  routingKey: z.string().optional(),
});
export type ChannelCredentials = z.infer<typeof ChannelCredentialsSchema>;

/** The stored `WS#<workspace>/CHANNEL#<id>` item, as read. */
export const AlertChannelRecordSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  type: z.enum(['webhook', 'slack', 'pagerduty']),
  name: z.string(),
  createdAt: z.string(),
  /** webhook: where deliveries go (shown in listings; not a credential). Slack: legacy, see below. */
  url: z.string().optional(),
  /** slack, pagerduty: the listing's `target` (the URL's origin, the key's start). */
  target: z.string().optional(),
  /** The `ChannelCredentials`, sealed under the alert channel key. */
  sealedCredentials: z.string().optional(),
  /**
   * Legacy: items written before credentials were sealed hold them in clear (`secret`,
   * `routingKey`, and a Slack channel's `url`); they are read as they are (channel-credentials.ts).
   */
  secret: z.string().optional(),
  routingKey: z.string().optional(),
  tunnelIds: z.array(z.string()).optional(),
});
export type AlertChannelRecord = z.infer<typeof AlertChannelRecordSchema>;

/**
 * A channel as it is written: its credentials sealed, and no field that could hold one in clear
 * (the store writes a `url` for webhook channels only).
 */
export type SealedAlertChannel = Omit<AlertChannelRecord, 'secret' | 'routingKey' | 'sealedCredentials'> & {
  sealedCredentials: string;
};

export const AlertChannelSchema = z
  .object({
    id: z.string(),
    type: z.enum(['webhook', 'slack', 'pagerduty']),
    name: z.string(),
    createdAt: z.string(),
    /** webhook: where deliveries go. */
    url: z.string().optional(),
    /** slack, pagerduty: enough to tell it apart (the URL or key itself is a credential). */
    target: z.string().optional(),
    tunnelIds: z.array(z.string()).optional(),
    /** webhook: the signing secret, in the create response only. */
    secret: z.string().optional(),
  })
  .openapi('AlertChannel');
export type AlertChannel = z.infer<typeof AlertChannelSchema>;

export const AlertChannelListSchema = z
  .object({ items: z.array(AlertChannelSchema) })
  .openapi('AlertChannelList');

export const AlertChannelIdParamSchema = z.object({
  id: z
    .string()
    .regex(CHANNEL_ID_PATTERN, 'is not an alert channel id')
    .openapi({ param: { name: 'id', in: 'path' }, example: 'ach_abcdefghijklmnop' }),
});

/** One attempt to deliver to a channel, as the delivery log keeps it. */
export const ChannelDeliverySchema = z
  .object({
    at: z.string(),
    alertId: z.string(),
    /** `tunnel.down`, `tunnel.up`, or `test`. */
    type: z.string(),
    ok: z.boolean(),
    /** The receiver's HTTP status; absent when it gave none (refused, unreachable, timed out). */
    statusCode: z.number().int().optional(),
    latencyMs: z.number().int(),
    error: z.string().optional(),
  })
  .openapi('AlertChannelDelivery');
export type ChannelDelivery = z.infer<typeof ChannelDeliverySchema>;

export const ChannelDeliveryListSchema = z
  .object({ items: z.array(ChannelDeliverySchema) })
  .openapi('AlertChannelDeliveryList');

export const ChannelTestResultSchema = z
  .object({
    ok: z.boolean(),
    statusCode: z.number().int().optional(),
    latencyMs: z.number().int(),
    error: z.string().optional(),
    /** The first bytes of the receiver's answer. */
    response: z.string().optional(),
  })
  .openapi('AlertChannelTestResult');
export type ChannelTestResult = z.infer<typeof ChannelTestResultSchema>;

/**
 * What a customer may see of a channel; the webhook secret only in the create response, where the
 * caller passes it.
 */
export function toAlertChannel(record: AlertChannelRecord, createdSecret?: string): AlertChannel {
  const view: AlertChannel = {
    id: record.id,
    type: record.type,
    name: record.name,
    createdAt: record.createdAt,
  };
  if (record.type === 'webhook' && record.url) view.url = record.url;
  // A legacy item has no `target`: made from its clear credentials, as it was then.
  const target =
    record.target ?? channelTarget(record.type, { url: record.url, routingKey: record.routingKey });
  if (target) view.target = target;
  if (record.tunnelIds) view.tunnelIds = [...record.tunnelIds];
  if (createdSecret) view.secret = createdSecret;
  return view;
}

/** Enough of a Slack URL or a routing key to tell channels apart: never the credential itself. */
export function channelTarget(
  type: AlertChannelRecord['type'],
  credentials: ChannelCredentials,
): string | undefined {
  if (type === 'slack' && credentials.url) return maskedUrl(credentials.url);
  if (type === 'pagerduty' && credentials.routingKey)
    return `routing key ${credentials.routingKey.slice(0, 4)}…`;
  return undefined;
}

/** Origin and first path segment: a Slack webhook URL's token parts are the credential. */
function maskedUrl(raw: string): string {
  try {
    const url = new URL(raw);
    const first = url.pathname.split('/').filter(Boolean)[0];
    return `${url.origin}/${first ? `${first}/` : ''}…`;
  } catch {
    return '…';
  }
}

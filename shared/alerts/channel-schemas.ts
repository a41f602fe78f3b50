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

/** The stored `WS#<workspace>/CHANNEL#<id>` item (secrets included: they never leave in a response). */
export const AlertChannelRecordSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  type: z.enum(['webhook', 'slack', 'pagerduty']),
  name: z.string(),
  createdAt: z.string(),
  /** webhook, slack. */
  url: z.string().optional(),
  /** webhook: the Standard Webhooks signing secret. */
  secret: z.string().optional(),
  /** pagerduty. */
  routingKey: z.string().optional(),
  tunnelIds: z.array(z.string()).optional(),
});
export type AlertChannelRecord = z.infer<typeof AlertChannelRecordSchema>;

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

/** What a customer may see of a channel; the secret only when just created. */
export function toAlertChannel(record: AlertChannelRecord, withSecret = false): AlertChannel {
  const view: AlertChannel = {
    id: record.id,
    type: record.type,
    name: record.name,
    createdAt: record.createdAt,
  };
  if (record.type === 'webhook' && record.url) view.url = record.url;
  if (record.type === 'slack' && record.url) view.target = maskedUrl(record.url);
  if (record.type === 'pagerduty' && record.routingKey)
    view.target = `routing key ${record.routingKey.slice(0, 4)}…`;
  if (record.tunnelIds) view.tunnelIds = [...record.tunnelIds];
  if (withSecret && record.secret) view.secret = record.secret;
  return view;
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

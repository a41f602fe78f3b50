/**
 * The workspace's alert channels (CONTRACT.md, Extensions): create (the webhook secret shown once),
 * list, delete, send a test, read the delivery log. Channel URLs are checked by the SSRF guard
 * here, and again on every send. Credentials are sealed before they are stored, and opened only to
 * send a test (shared/alerts/channel-credentials.ts).
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import type { ChannelCredentialSealer } from '../../../shared/alerts/channel-credentials';
import {
  AlertChannelIdParamSchema,
  AlertChannelListSchema,
  type AlertChannelRecord,
  AlertChannelSchema,
  type ChannelCredentials,
  ChannelDeliveryListSchema,
  ChannelTestResultSchema,
  type CreateAlertChannel,
  CreateAlertChannelSchema,
  channelTarget,
  newChannelId,
  newWebhookSecret,
  type SealedAlertChannel,
  toAlertChannel,
} from '../../../shared/alerts/channel-schemas';
import { type ChannelSettings, ChannelSink } from '../../../shared/alerts/channel-sink';
import { NotFoundError, ValidationError } from '../../../shared/errors';
import type { Logger } from '../../../shared/logger';
import { checkOutboundUrl, type Resolve } from '../../../shared/outbound-url';
import { type AlertChannelStore, DELIVERY_RETENTION_DAYS } from '../../../shared/store/dynamo-alert-channels';
import { UnreadableItemError } from '../../../shared/store/read-items';
import type { TunnelStore } from '../../../shared/store/tunnel-store';
import type { AuthEnv } from '../auth';
import { parseWith, readJson } from '../body';
import { ApiError } from '../errors';
import { RateLimiter } from '../rate-limit';
import { API_KEY_SECURITY, AUTHENTICATED, addRoute, errors, json, jsonBody } from '../route-spec';

export interface AlertChannelDeps {
  store: AlertChannelStore;
  /** Seals credentials at create, opens them for a test (the key from the secret store). */
  credentials: Pick<ChannelCredentialSealer, 'seal' | 'open'>;
  settings: ChannelSettings;
  /** `MAX_ALERT_CHANNELS_PER_WORKSPACE`. */
  maxPerWorkspace: number;
  /** Name resolution for the create-time address check (the system's by default). */
  resolve?: Resolve;
}

export interface AlertChannelRouteDeps extends AlertChannelDeps {
  tunnels: Pick<TunnelStore, 'getTunnel'>;
  auth: MiddlewareHandler<AuthEnv>;
  logger: Logger;
  now: () => Date;
}

const DELIVERIES_LIMIT = 100;
/**
 * Test sends per channel (per API instance): a few in a row, then one every 5 s. A test makes us
 * send a request to a URL of the customer's choosing: never a flood, whatever the API rate allows.
 */
const TESTS_PER_CHANNEL = { ratePerSec: 0.2, burst: 3 };
const route = { tags: ['Alert channels'] as ['Alert channels'], security: API_KEY_SECURITY };
const params = { params: AlertChannelIdParamSchema };

export function alertChannelRoutes(deps: AlertChannelRouteDeps): OpenAPIHono<AuthEnv> {
  const { store, logger } = deps;
  const tests = new RateLimiter(TESTS_PER_CHANNEL, () => deps.now().getTime());
  const app = new OpenAPIHono<AuthEnv>();
  app.use(deps.auth);

  const channelOf = async (workspaceId: string, raw: string | undefined): Promise<AlertChannelRecord> => {
    const { id } = parseWith(AlertChannelIdParamSchema, { id: raw });
    const channel = await store.getChannel(workspaceId, id);
    if (!channel) throw new NotFoundError('alert channel', id);
    return channel;
  };

  addRoute(
    app,
    {
      ...route,
      method: 'post',
      path: '/',
      operationId: 'createAlertChannel',
      summary: 'Create an alert channel',
      description:
        "A destination for the workspace's `tunnel.down` and `tunnel.up` alerts: a webhook signed the Standard Webhooks way " +
        '(its `secret` is in this answer only), a Slack incoming webhook, or a PagerDuty Events API v2 integration. ' +
        '`tunnelIds` narrows it to some tunnels. URLs must be https and must not point at loopback, private, ' +
        'link-local or metadata addresses (checked now and at every send).',
      request: jsonBody(CreateAlertChannelSchema),
      responses: {
        201: json(AlertChannelSchema, 'Created; a webhook channel’s `secret` is shown only here'),
        ...errors([400, 409, 422, ...AUTHENTICATED], {
          409: '`quota_exceeded`: the workspace holds the most alert channels it may; delete one first',
          422: '`validation_failed`: `details` name each invalid field (a URL refused by the address check, a tunnel id not in the workspace)',
        }),
      },
    },
    async (c) => {
      const workspaceId = c.get('workspaceId');
      const body = await readJson(c, CreateAlertChannelSchema);
      await validate(workspaceId, body);
      const id = newChannelId();
      const credentials: ChannelCredentials =
        body.type === 'webhook'
          ? { secret: newWebhookSecret() }
          : body.type === 'slack'
            ? { url: body.url }
            : { routingKey: body.routingKey };
      const record: SealedAlertChannel = {
        id,
        workspaceId,
        type: body.type,
        name: body.name,
        createdAt: deps.now().toISOString(),
        sealedCredentials: await deps.credentials.seal({ workspaceId, channelId: id }, credentials),
      };
      // A webhook's URL is where it delivers, shown in listings; a Slack URL is the credential itself.
      if (body.type === 'webhook') record.url = body.url;
      const target = channelTarget(body.type, credentials);
      if (target) record.target = target;
      if (body.tunnelIds) record.tunnelIds = [...new Set(body.tunnelIds)];
      await store.createChannel(record, deps.maxPerWorkspace);
      logger.info('alert channel created', { workspaceId, channelId: record.id, type: record.type });
      return c.json(toAlertChannel(record, credentials.secret), 201);
    },
  );

  /** The URL against the SSRF guard, and `tunnelIds` against the workspace's tunnels. */
  const validate = async (workspaceId: string, body: CreateAlertChannel) => {
    if (body.type !== 'pagerduty') {
      const problem = await checkOutboundUrl(body.url, deps.settings.policy, deps.resolve);
      if (problem) throw ValidationError.field('url', problem);
    }
    const ids = body.tunnelIds ?? [];
    const found = await Promise.all(
      ids.map((id) =>
        // A tunnel stored in a form that cannot be read is still one of the workspace's.
        deps.tunnels.getTunnel(workspaceId, id).catch((err: unknown) => {
          if (err instanceof UnreadableItemError) return true;
          throw err;
        }),
      ),
    );
    const issues = ids.flatMap((id, i) =>
      found[i] ? [] : [{ path: `tunnelIds.${i}`, message: `no tunnel ${id} in this workspace` }],
    );
    if (issues.length > 0) throw new ValidationError(issues);
  };

  addRoute(
    app,
    {
      ...route,
      method: 'get',
      path: '/',
      operationId: 'listAlertChannels',
      summary: "List the workspace's alert channels",
      description:
        'Oldest first; never their secrets (a Slack URL or PagerDuty key is shown by its start only).',
      responses: { 200: json(AlertChannelListSchema, "The workspace's channels"), ...errors(AUTHENTICATED) },
    },
    async (c) => {
      const channels = await store.listChannels(c.get('workspaceId'));
      return c.json({ items: channels.map((channel) => toAlertChannel(channel)) });
    },
  );

  addRoute(
    app,
    {
      ...route,
      method: 'delete',
      path: '/{id}',
      operationId: 'deleteAlertChannel',
      summary: 'Delete an alert channel',
      description: 'Nothing more is sent to it, including what it was still owed of open incidents.',
      request: params,
      responses: { 204: { description: 'Deleted' }, ...errors([404, 422, ...AUTHENTICATED]) },
    },
    async (c) => {
      const workspaceId = c.get('workspaceId');
      const { id } = parseWith(AlertChannelIdParamSchema, { id: c.req.param('id') });
      await store.deleteChannel(workspaceId, id);
      logger.info('alert channel deleted', { workspaceId, channelId: id });
      return c.body(null, 204);
    },
  );

  addRoute(
    app,
    {
      ...route,
      method: 'post',
      path: '/{id}/test',
      operationId: 'testAlertChannel',
      summary: 'Send a test alert',
      description:
        'One request, the way alerts go (signed, through the same address checks), with `type: "test"` ' +
        '(PagerDuty: a `trigger` of severity `info`). Answers 200 with what the receiver answered, whether or not it accepted it; ' +
        'the attempt is in the delivery log.',
      request: params,
      responses: {
        200: json(ChannelTestResultSchema, "The receiver's answer (or why there was none)"),
        ...errors([404, 422, ...AUTHENTICATED], {
          429: '`rate_limited`: too many requests, or more than 3 tests of this channel in a row (then one every 5 s); retry after `Retry-After` seconds',
        }),
      },
    },
    async (c) => {
      const workspaceId = c.get('workspaceId');
      const channel = await channelOf(workspaceId, c.req.param('id'));
      const wait = tests.take(channel.id);
      if (wait > 0) {
        throw new ApiError(
          429,
          'rate_limited',
          `too many tests of this channel; retry in ${wait} s`,
          undefined,
          {
            'Retry-After': String(wait),
          },
        );
      }
      const at = deps.now().toISOString();
      const sink = new ChannelSink(
        channel,
        deps.credentials,
        { ...deps.settings, now: deps.now },
        (id, delivery) => store.recordDelivery(id, delivery),
        logger,
      );
      const id = `test_${channel.id}@${at}`;
      const result = await sink.attempt({
        kind: 'test',
        id,
        at,
        channel: { id: channel.id, name: channel.name },
      });
      logger.info('alert channel tested', {
        workspaceId,
        channelId: channel.id,
        ok: result.ok,
        statusCode: result.statusCode,
        ms: result.latencyMs,
      });
      return c.json(result);
    },
  );

  addRoute(
    app,
    {
      ...route,
      method: 'get',
      path: '/{id}/deliveries',
      operationId: 'listAlertChannelDeliveries',
      summary: "The channel's delivery log",
      description: `Each attempt (retries included), newest first, kept ${DELIVERY_RETENTION_DAYS} days: at most the latest ${DELIVERIES_LIMIT}.`,
      request: params,
      responses: {
        200: json(ChannelDeliveryListSchema, 'Attempts, newest first'),
        ...errors([404, 422, ...AUTHENTICATED]),
      },
    },
    async (c) => {
      const channel = await channelOf(c.get('workspaceId'), c.req.param('id'));
      const items = await store.listDeliveries(channel.id, DELIVERIES_LIMIT);
      // DynamoDB's TTL deletes within days of expiry, not at it: hide what has expired meanwhile.
      const oldest = deps.now().getTime() - DELIVERY_RETENTION_DAYS * 86_400_000;
      return c.json({ items: items.filter((d) => Date.parse(d.at) >= oldest) });
    },
  );
  return app;
}

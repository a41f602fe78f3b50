/** Tunnel routes: every one scoped to the caller's workspace by its API key. */
import { createHash } from 'node:crypto';
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { etag } from 'hono/etag';
import { ConflictError } from '../../../shared/errors';
import { hostProblem } from '../../../shared/hosts';
import type { Logger } from '../../../shared/logger';
import type { Tunnel } from '../../../shared/schemas';
import {
  CreateTunnelSchema,
  EventListSchema,
  ListQuerySchema,
  PatchTunnelSchema,
  ReconnectAcceptedSchema,
  RotateKeySchema,
  StatusSchema,
  TestResultSchema,
  TunnelIdParamSchema,
  TunnelListSchema,
  TunnelSchema,
} from '../../../shared/schemas';
import type { StatusSettings } from '../../../shared/status';
import { tunnelStatusView } from '../../../shared/status-warnings';
import type { TunnelStore } from '../../../shared/store/tunnel-store';
import type { TunnelRecord } from '../../../shared/tunnel';
import { customerInstructions, type GatewayInfo, toTunnel } from '../../../shared/tunnel-view';
import type { AuthEnv } from '../auth';
import { parseWith, readJson } from '../body';
import { API_KEY_SECURITY, AUTHENTICATED, addRoute, errors, json, jsonBody } from '../route-spec';
import { reconnectTunnel } from '../tunnel-reconnect';
import type { TunnelResult, TunnelService } from '../tunnel-service';
import { type TunnelTestDeps, testTunnel } from '../tunnel-test';
import { addConnectorRoutes } from './connectors';

export interface TunnelRouteDeps {
  service: TunnelService;
  store: TunnelStore;
  gateway: GatewayInfo;
  statusSettings: StatusSettings;
  test: TunnelTestDeps;
  auth: MiddlewareHandler<AuthEnv>;
  logger: Logger;
  now: () => Date;
  /** Since when this process has seen the table without a gap (liveness.ts). */
  observingSince: () => number | undefined;
}

/** A filtered listing reads at most this many store pages per request, then hands back a cursor. */
const MAX_PAGES_PER_LIST = 10;
const EVENTS_LIMIT = 100;

const tunnelRoute = { tags: ['Tunnels'] as ['Tunnels'], security: API_KEY_SECURITY };
const params = { params: TunnelIdParamSchema };

export function tunnelRoutes(deps: TunnelRouteDeps): OpenAPIHono<AuthEnv> {
  const { service, store, gateway, statusSettings: settings } = deps;
  const app = new OpenAPIHono<AuthEnv>();
  app.use(deps.auth);

  // Status on read: the same machine as the sweeper's over the same items, so dashboards see the
  // truth within a heartbeat instead of a sweep; what it would persist is the sweeper's business.
  const render = async (records: TunnelRecord[]): Promise<Tunnel[]> => {
    const sources = await store.getStatusSources(records.map((r) => r.id));
    const now = deps.now();
    const observingSince = deps.observingSince();
    return records.map((tunnel) => {
      const {
        state,
        heartbeat,
        status: previous,
        signals,
        traffic,
        unreadable,
        connectorStates,
        heartbeats,
      } = sources.get(tunnel.id) ?? {};
      if (unreadable) {
        for (const item of unreadable)
          deps.logger.error('stored item unreadable', { tunnelId: tunnel.id, ...item });
      }
      const view = tunnelStatusView({
        tunnel,
        state,
        heartbeat,
        ...(connectorStates ? { connectorStates } : {}),
        ...(heartbeats ? { heartbeats } : {}),
        previous,
        signals,
        traffic,
        unreadable,
        now,
        observingSince,
        settings,
      });
      return toTunnel(tunnel, view, gateway);
    });
  };
  const renderResult = async ({ record, privateKey }: TunnelResult): Promise<Tunnel> => {
    const [tunnel] = await render([record]);
    if (!tunnel) throw new Error('render lost a tunnel');
    // The generated reverse private key is returned here once and never stored.
    return privateKey === undefined ? tunnel : { ...tunnel, privateKey };
  };

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'post',
      path: '/',
      operationId: 'createTunnel',
      summary: 'Create a tunnel',
      description:
        'A standard tunnel (through your SSH bastion) or a reverse tunnel (your host connects out to us). ' +
        'A generated private key is returned here once and never stored in a readable form.',
      request: jsonBody(CreateTunnelSchema),
      responses: {
        201: json(TunnelSchema, 'Created'),
        ...errors([400, 409, 422, ...AUTHENTICATED], {
          409: '`quota_exceeded`: the workspace has the most tunnels it may hold (`details` name the limit)',
        }),
      },
    },
    async (c) => {
      const body = await readJson(c, CreateTunnelSchema);
      return c.json(await renderResult(await service.create(c.get('workspaceId'), body)), 201);
    },
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'get',
      path: '/',
      operationId: 'listTunnels',
      summary: 'List tunnels',
      description:
        'Newest first, a page at a time: pass `nextCursor` back as `cursor` for the next page. ' +
        'A stored tunnel that cannot be read is named under `unreadable` instead of failing the page.',
      request: { query: ListQuerySchema, headers: IfNoneMatchHeaders },
      responses: {
        200: { ...json(TunnelListSchema, 'A page of tunnels'), headers: EtagHeader },
        304: NOT_MODIFIED,
        ...errors([422, ...AUTHENTICATED]),
      },
    },
    ...revalidated,
    async (c) => {
      const query = parseWith(ListQuerySchema, c.req.query());
      const items: Tunnel[] = [];
      const unreadable: { id: string; message: string }[] = [];
      let cursor = query.cursor;
      for (let page = 0; page < MAX_PAGES_PER_LIST && items.length < query.limit; page++) {
        const result = await store.listTunnels(c.get('workspaceId'), {
          limit: query.limit - items.length,
          cursor,
        });
        // One item that does not read back never costs the page: it is named apart and logged.
        for (const item of result.unreadable) {
          deps.logger.error('stored item unreadable', { tunnelId: item.id, ...item });
          unreadable.push({ id: item.id, message: `stored configuration cannot be read (${item.reason})` });
        }
        const tunnels = await render(result.items);
        items.push(...(query.state ? tunnels.filter((t) => t.status.state === query.state) : tunnels));
        cursor = result.cursor;
        if (!cursor) break;
      }
      return c.json({
        items,
        ...(cursor ? { nextCursor: cursor } : {}),
        ...(unreadable.length > 0 ? { unreadable } : {}),
      });
    },
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'get',
      path: '/{id}',
      operationId: 'getTunnel',
      summary: 'Get a tunnel',
      description: 'Its configuration, its status (computed on read), and what to run or install.',
      request: { ...params, headers: IfNoneMatchHeaders },
      responses: {
        200: { ...json(TunnelSchema, 'The tunnel'), headers: EtagHeader },
        304: NOT_MODIFIED,
        ...errors([404, ...AUTHENTICATED], {
          500: '`internal_error`: a fault of ours (also: the tunnel is stored in a form that cannot be read; `details.id` names it, DELETE still removes it)',
        }),
      },
    },
    ...revalidated,
    async (c) => c.json(await renderResult({ record: await service.get(c.get('workspaceId'), tunnelId(c)) })),
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'patch',
      path: '/{id}',
      operationId: 'updateTunnel',
      summary: 'Change a tunnel',
      description:
        'Only the fields sent change. A reverse tunnel whose service changes needs the new command run.',
      request: { ...params, ...jsonBody(PatchTunnelSchema) },
      responses: {
        200: json(TunnelSchema, 'The changed tunnel'),
        ...errors([400, 404, 409, 422, ...AUTHENTICATED], {
          409: '`conflict`: the tunnel changed meanwhile too often to apply this; retry',
        }),
      },
    },
    async (c) => {
      const body = await readJson(c, PatchTunnelSchema);
      return c.json(
        await renderResult({ record: await service.patch(c.get('workspaceId'), tunnelId(c), body) }),
      );
    },
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'delete',
      path: '/{id}',
      operationId: 'deleteTunnel',
      summary: 'Delete a tunnel',
      request: params,
      responses: {
        204: { description: 'Deleted; its connection closes and its port is freed' },
        ...errors([404, ...AUTHENTICATED]),
      },
    },
    async (c) => {
      await service.delete(c.get('workspaceId'), tunnelId(c));
      return c.body(null, 204);
    },
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'post',
      path: '/{id}/rotate-key',
      operationId: 'rotateTunnelKey',
      summary: "Rotate a tunnel's key",
      description:
        'Standard: a new key pair; install the new authorizedKeysLine, the old key keeps working for open connections. ' +
        'Reverse: a new key (generated, or the publicKey sent); the customer installs it.',
      request: { ...params, ...jsonBody(RotateKeySchema, false) },
      responses: {
        200: json(TunnelSchema, 'The tunnel with its new publicKey'),
        ...errors([400, 404, 409, 422, ...AUTHENTICATED], {
          409: '`conflict`: the tunnel changed meanwhile too often to apply this; retry',
        }),
      },
    },
    async (c) => {
      const body = await readJson(c, RotateKeySchema, { optional: true });
      return c.json(await renderResult(await service.rotateKey(c.get('workspaceId'), tunnelId(c), body)));
    },
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'get',
      path: '/{id}/status',
      operationId: 'getTunnelStatus',
      summary: "Get a tunnel's status",
      description:
        'Poll this with `If-None-Match` set to the last `ETag`: an unchanged status answers 304 with no body.',
      request: {
        ...params,
        headers: z.object({
          'if-none-match': z.string().optional().openapi({ description: 'The ETag of the status last seen' }),
        }),
      },
      responses: {
        200: {
          ...json(StatusSchema, 'The current status'),
          headers: {
            ETag: { schema: { type: 'string' }, description: 'The status version, for If-None-Match' },
          },
        },
        304: { description: 'Unchanged since the ETag given in If-None-Match' },
        ...errors([404, ...AUTHENTICATED]),
      },
    },
    async (c) => {
      const [tunnel] = await render([await service.get(c.get('workspaceId'), tunnelId(c))]);
      if (!tunnel) throw new Error('render lost a tunnel');
      const body = JSON.stringify(tunnel.status);
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
      c.header('ETag', etag);
      c.header('Cache-Control', 'no-cache');
      if (matchesEtag(c.req.header('If-None-Match'), etag)) return c.body(null, 304);
      return c.body(body, 200, { 'Content-Type': 'application/json' });
    },
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'post',
      path: '/{id}/test',
      operationId: 'testTunnel',
      summary: 'Test a tunnel end to end',
      description:
        'Each step timed, through to the service; the first failing one with its error code and a hint.',
      request: params,
      responses: {
        200: json(TestResultSchema, 'The steps (the test ran, whether or not it passed)'),
        ...errors([404, ...AUTHENTICATED]),
      },
    },
    async (c) => {
      const record = await service.get(c.get('workspaceId'), tunnelId(c));
      return c.json(await testTunnel(record, deps.test));
    },
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'post',
      path: '/{id}/reconnect',
      operationId: 'reconnectTunnel',
      summary: 'Reconnect a standard tunnel now',
      description: 'Drops the retry backoff after you fixed the cause, instead of waiting it out.',
      request: params,
      responses: {
        202: json(
          ReconnectAcceptedSchema,
          'The backoff is dropped and the tunnel connects now (or is up, or already connecting)',
        ),
        ...errors([404, 409, ...AUTHENTICATED], {
          409: '`conflict`: a reverse tunnel (the customer side reconnects it) or a disabled one',
        }),
      },
    },
    async (c) => {
      const record = await service.get(c.get('workspaceId'), tunnelId(c));
      return c.json(await reconnectTunnel(record, deps.test), 202);
    },
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'get',
      path: '/{id}/commands/{kind}',
      operationId: 'getTunnelCommand',
      summary: "Get one of a reverse tunnel's commands as a file",
      description:
        'The command (or the systemd unit, or the crontab line) as plain text ending in a newline, so ' +
        '`curl -o <file>` writes a working file. The systemd unit names its file in Content-Disposition.',
      request: { params: TunnelIdParamSchema.extend({ kind: CommandKindSchema }) },
      responses: {
        200: { content: { 'text/plain': { schema: z.string() } }, description: 'The text' },
        ...errors([404, 409, 422, ...AUTHENTICATED], {
          409: '`conflict`: a standard tunnel has no commands (its bastion needs the authorized-keys line)',
          422: '`validation_failed`: `kind` is not one of ssh, autossh, systemd, crontab, plink',
        }),
      },
    },
    async (c) => {
      const { kind } = parseWith(z.object({ kind: CommandKindSchema }), { kind: c.req.param('kind') });
      // From the stored tunnel alone: its status is not read.
      const record = await service.get(c.get('workspaceId'), tunnelId(c));
      const command = customerInstructions(record, gateway).reverse?.commands[kind];
      if (command === undefined) {
        throw new ConflictError(
          `tunnel ${tunnelId(c)} is a standard tunnel: it has no commands; install its authorized-keys-line on the bastion`,
        );
      }
      if (kind === 'systemd') {
        c.header('Content-Disposition', `attachment; filename="tunnelkeeper-${record.id}.service"`);
      }
      return textFile(c, command);
    },
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'get',
      path: '/{id}/authorized-keys-line',
      operationId: 'getTunnelAuthorizedKeysLine',
      summary: "Get a standard tunnel's authorized_keys line as a file",
      description:
        "The line for the bastion user's `~/.ssh/authorized_keys`, as plain text ending in a newline: " +
        '`curl ... >> ~/.ssh/authorized_keys` appends a working line.',
      request: params,
      responses: {
        200: { content: { 'text/plain': { schema: z.string() } }, description: 'The line' },
        ...errors([404, 409, ...AUTHENTICATED], {
          409:
            '`conflict`: a reverse tunnel has no authorized-keys line (its customer runs one of its commands), ' +
            'nor a standard tunnel stored with a service host the line cannot hold',
        }),
      },
    },
    async (c) => {
      const record = await service.get(c.get('workspaceId'), tunnelId(c));
      const line = customerInstructions(record, gateway).authorizedKeysLine;
      if (line === undefined) {
        throw new ConflictError(
          record.type === 'reverse'
            ? `tunnel ${record.id} is a reverse tunnel: it has no authorized-keys line; run one of its commands instead`
            : `tunnel ${record.id} has no authorized-keys line: its service host cannot be written into one ` +
                `(${hostProblem(record.service.host) ?? 'unsupported host'}); change service.host with PATCH`,
        );
      }
      return textFile(c, line);
    },
  );

  addRoute(
    app,
    {
      ...tunnelRoute,
      method: 'get',
      path: '/{id}/events',
      operationId: 'listTunnelEvents',
      summary: "List a tunnel's status history",
      description: `Transitions, newest first (the latest ${EVENTS_LIMIT}).`,
      request: params,
      responses: { 200: json(EventListSchema, 'Status history'), ...errors([404, ...AUTHENTICATED]) },
    },
    async (c) => {
      const record = await service.get(c.get('workspaceId'), tunnelId(c));
      return c.json({ items: await store.listEvents(record.id, EVENTS_LIMIT) });
    },
  );

  addConnectorRoutes(app, { ...deps, statusSettings: settings });

  return app;
}

/**
 * Polling for free (the console's tunnel list and page): the answer carries an `ETag` of its
 * body, and a poll that sends it back in If-None-Match gets a 304 with no body while nothing changed.
 */
const revalidated: MiddlewareHandler[] = [
  async (c, next) => {
    await next();
    if (c.res.status === 200 || c.res.status === 304) c.header('Cache-Control', 'no-cache');
  },
  etag(),
];
const IfNoneMatchHeaders = z.object({
  'if-none-match': z.string().optional().openapi({ description: 'The ETag of the answer last seen' }),
});
const EtagHeader = {
  ETag: { schema: { type: 'string' as const }, description: 'The version of this answer, for If-None-Match' },
};
const NOT_MODIFIED = { description: 'Unchanged since the ETag given in If-None-Match' };

/** The reverse tunnel commands served as files, as the tunnel names them. */
const CommandKindSchema = z
  .enum(['ssh', 'autossh', 'systemd', 'crontab', 'plink'], {
    error: 'must be one of ssh, autossh, systemd, crontab, plink',
  })
  .openapi({ param: { name: 'kind', in: 'path' } });

/** Text as a file: UTF-8, ending in exactly one newline (a crontab or unit file needs it). */
function textFile(c: Context, text: string): Response {
  c.header('Cache-Control', 'no-store');
  return c.body(`${text.replace(/\n*$/, '')}\n`, 200, { 'Content-Type': 'text/plain; charset=utf-8' });
}

/** The `{id}` of the route (always there: the router matched it). */
const tunnelId = (c: Context) => c.req.param('id') ?? '';

/** RFC 9110 If-None-Match: `*`, or a list of (possibly weak) tags compared weakly. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

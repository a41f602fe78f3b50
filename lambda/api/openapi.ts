/** The OpenAPI 3.1 description of every route, generated from the same zod schemas the routes use. */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import {
  ApiKeyCreatedSchema,
  ApiKeyIdParamSchema,
  ApiKeyListSchema,
  CreateTunnelSchema,
  CreateWorkspaceSchema,
  ErrorBodySchema,
  EventListSchema,
  ListQuerySchema,
  PageQuerySchema,
  PatchTunnelSchema,
  ReconnectAcceptedSchema,
  RotateKeySchema,
  StatusSchema,
  TestResultSchema,
  TunnelIdParamSchema,
  TunnelListSchema,
  TunnelSchema,
  WorkspaceCreatedSchema,
  WorkspaceIdParamSchema,
  WorkspaceListSchema,
} from '../../shared/schemas';

type Registry = OpenAPIHono['openAPIRegistry'];

const json = <T>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});
const errors = {
  400: json(ErrorBodySchema, 'Malformed JSON'),
  401: json(ErrorBodySchema, 'Missing or invalid credentials'),
  404: json(ErrorBodySchema, 'No such tunnel in this workspace'),
  409: json(ErrorBodySchema, 'conflict (e.g. the last API key), or quota_exceeded (details name the limit)'),
  413: json(ErrorBodySchema, 'Body over 64 KiB'),
  422: json(ErrorBodySchema, 'Invalid fields, named in details'),
  429: json(ErrorBodySchema, 'Rate limited; see Retry-After'),
  503: json(ErrorBodySchema, 'Storage or the secret store is unavailable or full; see Retry-After'),
};

const ReadinessSchema = z
  .object({
    ok: z.boolean(),
    checks: z.record(z.string(), z.object({ ok: z.boolean(), ms: z.number(), error: z.string().optional() })),
  })
  .openapi('Readiness');
const body = <T>(schema: T) => ({ body: { content: { 'application/json': { schema } }, required: true } });
const secured = [{ apiKey: [] }];

export function describeRoutes(registry: Registry): void {
  registry.registerComponent('securitySchemes', 'apiKey', { type: 'http', scheme: 'bearer' });
  registry.registerComponent('securitySchemes', 'adminToken', { type: 'http', scheme: 'bearer' });
  const routes = [
    createRoute({
      method: 'get',
      path: '/healthz',
      responses: { 200: json(z.object({ ok: z.literal(true) }), 'Healthy') },
    }),
    createRoute({
      method: 'get',
      path: '/readyz',
      responses: {
        200: json(ReadinessSchema, 'Every dependency answers'),
        503: json(ReadinessSchema, 'A dependency does not answer: the failing check is named'),
      },
    }),
    createRoute({
      method: 'post',
      path: '/v1/admin/workspaces',
      security: [{ adminToken: [] }],
      request: body(CreateWorkspaceSchema),
      responses: { 201: json(WorkspaceCreatedSchema, 'Created; apiKey is shown only here'), ...errors },
    }),
    createRoute({
      method: 'get',
      path: '/v1/admin/workspaces',
      security: [{ adminToken: [] }],
      request: { query: PageQuerySchema },
      responses: {
        200: json(WorkspaceListSchema, 'Every workspace, oldest first, a page at a time'),
        ...errors,
      },
    }),
    createRoute({
      method: 'post',
      path: '/v1/admin/workspaces/{id}/api-keys',
      security: [{ adminToken: [] }],
      request: { params: WorkspaceIdParamSchema },
      responses: {
        201: json(
          ApiKeyCreatedSchema,
          'A new key for the workspace (a lost one is replaced so); apiKey is shown only here',
        ),
        ...errors,
      },
    }),
    createRoute({
      method: 'get',
      path: '/v1/api-keys',
      security: secured,
      responses: {
        200: json(ApiKeyListSchema, "The workspace's keys, oldest first; never the keys themselves"),
        ...errors,
      },
    }),
    createRoute({
      method: 'post',
      path: '/v1/api-keys',
      security: secured,
      responses: { 201: json(ApiKeyCreatedSchema, 'Created; apiKey is shown only here'), ...errors },
    }),
    createRoute({
      method: 'delete',
      path: '/v1/api-keys/{id}',
      security: secured,
      request: { params: ApiKeyIdParamSchema },
      responses: {
        204: { description: 'Revoked: it authenticates nothing from now on' },
        ...errors,
      },
    }),
    createRoute({
      method: 'post',
      path: '/v1/tunnels',
      security: secured,
      request: body(CreateTunnelSchema),
      responses: { 201: json(TunnelSchema, 'Created'), ...errors },
    }),
    createRoute({
      method: 'get',
      path: '/v1/tunnels',
      security: secured,
      request: { query: ListQuerySchema },
      responses: { 200: json(TunnelListSchema, 'A page of tunnels, newest first'), ...errors },
    }),
    createRoute({
      method: 'get',
      path: '/v1/tunnels/{id}',
      security: secured,
      request: { params: TunnelIdParamSchema },
      responses: { 200: json(TunnelSchema, 'The tunnel'), ...errors },
    }),
    createRoute({
      method: 'patch',
      path: '/v1/tunnels/{id}',
      security: secured,
      request: { params: TunnelIdParamSchema, ...body(PatchTunnelSchema) },
      responses: { 200: json(TunnelSchema, 'The changed tunnel'), ...errors },
    }),
    createRoute({
      method: 'delete',
      path: '/v1/tunnels/{id}',
      security: secured,
      request: { params: TunnelIdParamSchema },
      responses: { 204: { description: 'Deleted; its connection closes and its port is freed' }, ...errors },
    }),
    createRoute({
      method: 'post',
      path: '/v1/tunnels/{id}/rotate-key',
      security: secured,
      request: {
        params: TunnelIdParamSchema,
        body: { content: { 'application/json': { schema: RotateKeySchema } }, required: false },
      },
      responses: { 200: json(TunnelSchema, 'The tunnel with its new publicKey'), ...errors },
    }),
    createRoute({
      method: 'get',
      path: '/v1/tunnels/{id}/status',
      security: secured,
      request: { params: TunnelIdParamSchema },
      responses: {
        200: json(StatusSchema, 'Current status, with an ETag'),
        304: { description: 'Unchanged since the ETag given in If-None-Match' },
        ...errors,
      },
    }),
    createRoute({
      method: 'post',
      path: '/v1/tunnels/{id}/test',
      security: secured,
      request: { params: TunnelIdParamSchema },
      responses: {
        200: json(TestResultSchema, 'Each step, timed; the first failing one with code and hint'),
        ...errors,
      },
    }),
    createRoute({
      method: 'post',
      path: '/v1/tunnels/{id}/reconnect',
      security: secured,
      request: { params: TunnelIdParamSchema },
      responses: {
        202: json(
          ReconnectAcceptedSchema,
          'Standard: the backoff is dropped and the tunnel connects now (or is up, or already connecting)',
        ),
        ...errors,
        409: json(
          ErrorBodySchema,
          'conflict: a reverse tunnel (the customer side reconnects it) or a disabled one',
        ),
      },
    }),
    createRoute({
      method: 'get',
      path: '/v1/tunnels/{id}/events',
      security: secured,
      request: { params: TunnelIdParamSchema },
      responses: { 200: json(EventListSchema, 'Status history, newest first'), ...errors },
    }),
  ];
  for (const route of routes) registry.registerPath(route);
}

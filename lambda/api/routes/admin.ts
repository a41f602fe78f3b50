/** Operator routes, behind the admin token: workspaces, and a new key for any of them. */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { issueApiKey } from '../../../shared/api-keys';
import { newWorkspaceId } from '../../../shared/ids';
import type { Logger } from '../../../shared/logger';
import {
  ApiKeyCreatedSchema,
  CreateWorkspaceSchema,
  PageQuerySchema,
  WorkspaceCreatedSchema,
  WorkspaceIdParamSchema,
  WorkspaceListSchema,
} from '../../../shared/schemas';
import type { WorkspaceStore } from '../../../shared/store/tunnel-store';
import { parseWith, readJson } from '../body';
import { ADMIN_SECURITY, AUTHENTICATED, addRoute, errors, json, jsonBody } from '../route-spec';

export interface AdminRouteDeps {
  store: WorkspaceStore;
  auth: MiddlewareHandler;
  logger: Logger;
  maxKeysPerWorkspace: number;
  now: () => Date;
}

const operatorRoute = { tags: ['Operator'] as ['Operator'], security: ADMIN_SECURITY };

export function adminRoutes(deps: AdminRouteDeps): OpenAPIHono {
  const { store, logger, now } = deps;
  const app = new OpenAPIHono();
  app.use(deps.auth);

  addRoute(
    app,
    {
      ...operatorRoute,
      method: 'get',
      path: '/workspaces',
      operationId: 'listWorkspaces',
      summary: 'List workspaces',
      description: 'Oldest first, a page at a time: pass `nextCursor` back as `cursor`.',
      request: { query: PageQuerySchema },
      responses: {
        200: json(WorkspaceListSchema, 'A page of workspaces'),
        ...errors([422, ...AUTHENTICATED]),
      },
    },
    async (c) => {
      const query = parseWith(PageQuerySchema, c.req.query());
      const page = await store.listWorkspaces({ limit: query.limit, cursor: query.cursor });
      // As the tunnel listing names it: pass it back as `cursor`.
      return c.json({ items: page.items, ...(page.cursor ? { nextCursor: page.cursor } : {}) });
    },
  );

  addRoute(
    app,
    {
      ...operatorRoute,
      method: 'post',
      path: '/workspaces',
      operationId: 'createWorkspace',
      summary: 'Create a workspace',
      description: 'With its first API key, shown only in this answer.',
      request: jsonBody(CreateWorkspaceSchema),
      responses: {
        201: json(WorkspaceCreatedSchema, 'Created; apiKey is shown only here'),
        ...errors([400, 409, 422, ...AUTHENTICATED], {
          409: '`conflict`: a workspace or key with the same id exists (retry: ids are random)',
        }),
      },
    },
    async (c) => {
      const body = await readJson(c, CreateWorkspaceSchema);
      const workspace = { id: newWorkspaceId(), name: body.name, createdAt: now().toISOString() };
      const { apiKey, record } = issueApiKey(workspace.createdAt);
      await store.createWorkspace(workspace, record);
      logger.info('workspace created', { workspaceId: workspace.id, keyId: record.id });
      return c.json({ id: workspace.id, name: workspace.name, apiKey }, 201);
    },
  );

  // A workspace whose every key is lost gets one back: the operator issues it, the customer revokes
  // the lost ones with it.
  addRoute(
    app,
    {
      ...operatorRoute,
      method: 'post',
      path: '/workspaces/{id}/api-keys',
      operationId: 'issueWorkspaceApiKey',
      summary: 'Issue an API key for a workspace',
      description: 'How a lost key is replaced; the customer then revokes the lost one with the new key.',
      request: { params: WorkspaceIdParamSchema },
      responses: {
        201: json(ApiKeyCreatedSchema, 'A new key for the workspace; apiKey is shown only here'),
        ...errors([404, 409, 422, ...AUTHENTICATED], {
          404: '`not_found`: no such workspace',
          409: '`quota_exceeded`: the workspace holds the most keys it may',
        }),
      },
    },
    async (c) => {
      const { id: workspaceId } = parseWith(WorkspaceIdParamSchema, { id: c.req.param('id') });
      const { apiKey, record } = issueApiKey(now().toISOString());
      await store.addApiKey(workspaceId, record, deps.maxKeysPerWorkspace);
      logger.info('api key issued by the operator', { workspaceId, keyId: record.id });
      const { hash: _hash, ...shown } = record;
      return c.json({ ...shown, workspaceId, apiKey }, 201);
    },
  );
  return app;
}

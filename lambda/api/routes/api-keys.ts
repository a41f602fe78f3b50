/** The caller's workspace's API keys: list, create (the key shown once), revoke. */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { issueApiKey } from '../../../shared/api-keys';
import type { Logger } from '../../../shared/logger';
import { ApiKeyCreatedSchema, ApiKeyIdParamSchema, ApiKeyListSchema } from '../../../shared/schemas';
import type { WorkspaceStore } from '../../../shared/store/tunnel-store';
import type { ApiKeyCache, AuthEnv } from '../auth';
import { parseWith } from '../body';
import { API_KEY_SECURITY, AUTHENTICATED, addRoute, errors, json } from '../route-spec';

export interface ApiKeyRouteDeps {
  store: WorkspaceStore;
  cache: ApiKeyCache;
  auth: MiddlewareHandler<AuthEnv>;
  logger: Logger;
  maxKeysPerWorkspace: number;
  now: () => Date;
}

const keyRoute = { tags: ['API keys'] as ['API keys'], security: API_KEY_SECURITY };

export function apiKeyRoutes(deps: ApiKeyRouteDeps): OpenAPIHono<AuthEnv> {
  const { store, cache, logger } = deps;
  const app = new OpenAPIHono<AuthEnv>();
  app.use(deps.auth);

  addRoute(
    app,
    {
      ...keyRoute,
      method: 'get',
      path: '/',
      operationId: 'listApiKeys',
      summary: "List the workspace's API keys",
      description:
        'Oldest first, by prefix and last use; never the keys themselves. `current` marks the one calling.',
      responses: { 200: json(ApiKeyListSchema, "The workspace's keys"), ...errors(AUTHENTICATED) },
    },
    async (c) => {
      const current = c.get('apiKeyId');
      const stored = await store.listApiKeys(c.get('workspaceId'));
      const items = stored.map(({ hash: _hash, ...key }) => ({ ...key, current: key.id === current }));
      return c.json({ items });
    },
  );

  addRoute(
    app,
    {
      ...keyRoute,
      method: 'post',
      path: '/',
      operationId: 'createApiKey',
      summary: 'Create an API key',
      description: `Works at once, beside the others (at most ${deps.maxKeysPerWorkspace}). The key is shown only in this answer.`,
      responses: {
        201: json(ApiKeyCreatedSchema, 'Created; apiKey is shown only here'),
        ...errors([409, ...AUTHENTICATED], {
          409: '`quota_exceeded`: the workspace holds the most keys it may; revoke one first',
        }),
      },
    },
    async (c) => {
      const workspaceId = c.get('workspaceId');
      const { apiKey, record } = issueApiKey(deps.now().toISOString());
      await store.addApiKey(workspaceId, record, deps.maxKeysPerWorkspace);
      logger.info('api key created', { workspaceId, keyId: record.id, by: c.get('apiKeyId') });
      const { hash: _hash, ...shown } = record;
      return c.json({ ...shown, workspaceId, apiKey }, 201);
    },
  );

  addRoute(
    app,
    {
      ...keyRoute,
      method: 'delete',
      path: '/{id}',
      operationId: 'revokeApiKey',
      summary: 'Revoke an API key',
      description:
        'It authenticates nothing from then on (the one calling too). The last key cannot be revoked.',
      request: { params: ApiKeyIdParamSchema },
      responses: {
        204: { description: 'Revoked' },
        ...errors([404, 409, 422, ...AUTHENTICATED], {
          409: '`conflict`: the last key of the workspace; create another first',
        }),
      },
    },
    async (c) => {
      const workspaceId = c.get('workspaceId');
      const { id } = parseWith(ApiKeyIdParamSchema, { id: c.req.param('id') });
      const hash = await store.revokeApiKey(workspaceId, id);
      cache.forget(hash);
      logger.info('api key revoked', { workspaceId, keyId: id, by: c.get('apiKeyId') });
      return c.body(null, 204);
    },
  );
  return app;
}

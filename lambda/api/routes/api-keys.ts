/** The caller's workspace's API keys: list, create (the key shown once), revoke. */
import { Hono, type MiddlewareHandler } from 'hono';
import { issueApiKey } from '../../../shared/api-keys';
import type { Logger } from '../../../shared/logger';
import { ApiKeyIdParamSchema } from '../../../shared/schemas';
import type { WorkspaceStore } from '../../../shared/store/tunnel-store';
import type { ApiKeyCache, AuthEnv } from '../auth';
import { parseWith } from '../body';

export interface ApiKeyRouteDeps {
  store: WorkspaceStore;
  cache: ApiKeyCache;
  auth: MiddlewareHandler<AuthEnv>;
  logger: Logger;
  maxKeysPerWorkspace: number;
  now: () => Date;
}

export function apiKeyRoutes(deps: ApiKeyRouteDeps): Hono<AuthEnv> {
  const { store, cache, logger } = deps;
  const app = new Hono<AuthEnv>();
  app.use(deps.auth);

  app.get('/', async (c) => {
    const current = c.get('apiKeyId');
    const stored = await store.listApiKeys(c.get('workspaceId'));
    const items = stored.map(({ hash: _hash, ...key }) => ({ ...key, current: key.id === current }));
    return c.json({ items });
  });

  app.post('/', async (c) => {
    const workspaceId = c.get('workspaceId');
    const { apiKey, record } = issueApiKey(deps.now().toISOString());
    await store.addApiKey(workspaceId, record, deps.maxKeysPerWorkspace);
    logger.info('api key created', { workspaceId, keyId: record.id, by: c.get('apiKeyId') });
    const { hash: _hash, ...shown } = record;
    return c.json({ ...shown, workspaceId, apiKey }, 201);
  });

  app.delete('/:id', async (c) => {
    const workspaceId = c.get('workspaceId');
    const { id } = parseWith(ApiKeyIdParamSchema, { id: c.req.param('id') });
    const hash = await store.revokeApiKey(workspaceId, id);
    cache.forget(hash);
    logger.info('api key revoked', { workspaceId, keyId: id, by: c.get('apiKeyId') });
    return c.body(null, 204);
  });
  return app;
}

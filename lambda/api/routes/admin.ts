/** Operator routes, behind the admin token: workspaces, and a new key for any of them. */
import { Hono, type MiddlewareHandler } from 'hono';
import { issueApiKey } from '../../../shared/api-keys';
import { newWorkspaceId } from '../../../shared/ids';
import type { Logger } from '../../../shared/logger';
import { CreateWorkspaceSchema, PageQuerySchema, WorkspaceIdParamSchema } from '../../../shared/schemas';
import type { WorkspaceStore } from '../../../shared/store/tunnel-store';
import { parseWith, readJson } from '../body';

export interface AdminRouteDeps {
  store: WorkspaceStore;
  auth: MiddlewareHandler;
  logger: Logger;
  maxKeysPerWorkspace: number;
  now: () => Date;
}

export function adminRoutes(deps: AdminRouteDeps): Hono {
  const { store, logger, now } = deps;
  const app = new Hono();
  app.use(deps.auth);

  app.get('/workspaces', async (c) => {
    const query = parseWith(PageQuerySchema, c.req.query());
    return c.json(await store.listWorkspaces({ limit: query.limit, cursor: query.cursor }));
  });

  app.post('/workspaces', async (c) => {
    const body = await readJson(c, CreateWorkspaceSchema);
    const workspace = { id: newWorkspaceId(), name: body.name, createdAt: now().toISOString() };
    const { apiKey, record } = issueApiKey(workspace.createdAt);
    await store.createWorkspace(workspace, record);
    logger.info('workspace created', { workspaceId: workspace.id, keyId: record.id });
    return c.json({ id: workspace.id, name: workspace.name, apiKey }, 201);
  });

  // A workspace whose every key is lost gets one back: the operator issues it, the customer revokes
  // the lost ones with it.
  app.post('/workspaces/:id/api-keys', async (c) => {
    const { id: workspaceId } = parseWith(WorkspaceIdParamSchema, { id: c.req.param('id') });
    const { apiKey, record } = issueApiKey(now().toISOString());
    await store.addApiKey(workspaceId, record, deps.maxKeysPerWorkspace);
    logger.info('api key issued by the operator', { workspaceId, keyId: record.id });
    const { hash: _hash, ...shown } = record;
    return c.json({ ...shown, workspaceId, apiKey }, 201);
  });
  return app;
}

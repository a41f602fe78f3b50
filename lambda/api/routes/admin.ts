/** Operator routes, behind the admin token. */
import { Hono, type MiddlewareHandler } from 'hono';
import { newApiKey, newWorkspaceId, sha256Hex } from '../../../shared/ids';
import { CreateWorkspaceSchema } from '../../../shared/schemas';
import type { TunnelStore } from '../../../shared/store/tunnel-store';
import { readJson } from '../body';

export function adminRoutes(store: TunnelStore, auth: MiddlewareHandler, now: () => Date): Hono {
  const app = new Hono();
  app.use(auth);
  app.post('/workspaces', async (c) => {
    const body = await readJson(c, CreateWorkspaceSchema);
    const workspace = { id: newWorkspaceId(), name: body.name, createdAt: now().toISOString() };
    const apiKey = newApiKey();
    await store.createWorkspace(workspace, sha256Hex(apiKey));
    return c.json({ id: workspace.id, name: workspace.name, apiKey }, 201);
  });
  return app;
}

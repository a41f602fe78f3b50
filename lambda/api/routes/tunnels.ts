/** Tunnel routes: every one scoped to the caller's workspace by its API key. */
import { createHash } from 'node:crypto';
import { Hono, type MiddlewareHandler } from 'hono';
import type { Logger } from '../../../shared/logger';
import type { Tunnel } from '../../../shared/schemas';
import {
  CreateTunnelSchema,
  ListQuerySchema,
  PatchTunnelSchema,
  RotateKeySchema,
} from '../../../shared/schemas';
import type { StatusSettings } from '../../../shared/status';
import { tunnelStatusView } from '../../../shared/status-warnings';
import type { TunnelStore } from '../../../shared/store/tunnel-store';
import type { TunnelRecord } from '../../../shared/tunnel';
import { type GatewayInfo, toTunnel } from '../../../shared/tunnel-view';
import type { AuthEnv } from '../auth';
import { parseWith, readJson } from '../body';
import { reconnectTunnel } from '../tunnel-reconnect';
import type { TunnelResult, TunnelService } from '../tunnel-service';
import { type TunnelTestDeps, testTunnel } from '../tunnel-test';

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

export function tunnelRoutes(deps: TunnelRouteDeps): Hono<AuthEnv> {
  const { service, store, gateway, statusSettings: settings } = deps;
  const app = new Hono<AuthEnv>();
  app.use(deps.auth);

  // Status on read: the same machine as the sweeper's over the same items, so dashboards see the
  // truth within a heartbeat instead of a sweep; what it would persist is the sweeper's business.
  const render = async (records: TunnelRecord[]): Promise<Tunnel[]> => {
    const sources = await store.getStatusSources(records.map((r) => r.id));
    const now = deps.now();
    const observingSince = deps.observingSince();
    return records.map((tunnel) => {
      const { state, heartbeat, status: previous, signals, unreadable } = sources.get(tunnel.id) ?? {};
      if (unreadable) {
        for (const item of unreadable)
          deps.logger.error('stored item unreadable', { tunnelId: tunnel.id, ...item });
      }
      const view = tunnelStatusView({
        tunnel,
        state,
        heartbeat,
        previous,
        signals,
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

  app.post('/', async (c) => {
    const body = await readJson(c, CreateTunnelSchema);
    return c.json(await renderResult(await service.create(c.get('workspaceId'), body)), 201);
  });

  app.get('/', async (c) => {
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
  });

  app.get('/:id', async (c) => {
    return c.json(await renderResult({ record: await service.get(c.get('workspaceId'), c.req.param('id')) }));
  });

  app.patch('/:id', async (c) => {
    const body = await readJson(c, PatchTunnelSchema);
    return c.json(
      await renderResult({ record: await service.patch(c.get('workspaceId'), c.req.param('id'), body) }),
    );
  });

  app.delete('/:id', async (c) => {
    await service.delete(c.get('workspaceId'), c.req.param('id'));
    return c.body(null, 204);
  });

  app.post('/:id/rotate-key', async (c) => {
    const body = await readJson(c, RotateKeySchema, { optional: true });
    return c.json(await renderResult(await service.rotateKey(c.get('workspaceId'), c.req.param('id'), body)));
  });

  app.get('/:id/status', async (c) => {
    const [tunnel] = await render([await service.get(c.get('workspaceId'), c.req.param('id'))]);
    if (!tunnel) throw new Error('render lost a tunnel');
    const body = JSON.stringify(tunnel.status);
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    c.header('ETag', etag);
    c.header('Cache-Control', 'no-cache');
    if (matchesEtag(c.req.header('If-None-Match'), etag)) return c.body(null, 304);
    return c.body(body, 200, { 'Content-Type': 'application/json' });
  });

  app.post('/:id/test', async (c) => {
    const record = await service.get(c.get('workspaceId'), c.req.param('id'));
    return c.json(await testTunnel(record, deps.test));
  });

  app.post('/:id/reconnect', async (c) => {
    const record = await service.get(c.get('workspaceId'), c.req.param('id'));
    return c.json(await reconnectTunnel(record, deps.test), 202);
  });

  app.get('/:id/events', async (c) => {
    const record = await service.get(c.get('workspaceId'), c.req.param('id'));
    return c.json({ items: await store.listEvents(record.id, EVENTS_LIMIT) });
  });

  return app;
}

/** RFC 9110 If-None-Match: `*`, or a list of (possibly weak) tags compared weakly. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

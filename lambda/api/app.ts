/**
 * The public HTTP API as a Hono app built from its dependencies: the Lambda handler and the local
 * stack serve the same app over different stores.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import type { PortRange } from '../../shared/config';
import type { WorkerControl } from '../../shared/control';
import type { KeyCrypto } from '../../shared/key-crypto';
import type { Logger } from '../../shared/logger';
import type { SecretStore } from '../../shared/secrets/secret-store';
import type { StatusSettings } from '../../shared/status';
import type { TunnelStore } from '../../shared/store/tunnel-store';
import type { GatewayInfo } from '../../shared/tunnel-view';
import { createErrorHandler, errorResponse } from './errors';
import { describeRoutes } from './openapi';
import { RateLimiter, type RateLimitSettings } from './rate-limit';
import { adminRoutes } from './routes/admin';
import { tunnelRoutes } from './routes/tunnels';
import { TunnelService } from './tunnel-service';

export interface ApiDeps {
  store: TunnelStore;
  secrets: SecretStore;
  logger: Logger;
  gateway: GatewayInfo;
  /** `TUNNEL_BIND_HOST`: the `connect.host` of every tunnel. */
  bindHost: string;
  portRange: PortRange;
  /** SHA-256 (hex) of the operator token. */
  adminTokenHash: string;
  /**
   * The status machine's timing (`statusSettingsFrom(env)` fits): how old an owner's heartbeat may
   * be before its tunnels show down. The contract's defaults when absent.
   */
  statusTiming?: Pick<StatusSettings, 'heartbeatIntervalMs' | 'keepaliveIntervalMs' | 'downGraceMs'>;
  now?: () => Date;
  rateLimit?: RateLimitSettings;
  /** Told after a tunnel is changed or deleted, so a co-located gateway applies it at once. */
  onTunnelChanged?: (tunnelId: string) => void;
  /** Reaches gateway workers' control endpoints for `POST /v1/tunnels/{id}/test`. */
  workerControl: WorkerControl;
  /** Where key derivation and RSA generation run; inline (on the event loop) when absent. */
  keyCrypto?: KeyCrypto;
}

export const MAX_BODY_BYTES = 64 * 1024;
/** The contract's defaults, for compositions that do not pass their configuration. */
const DEFAULT_HEARTBEAT_INTERVAL_MS = 15_000;
const DEFAULT_DOWN_GRACE_MS = 120_000;
const DEFAULT_RATE_LIMIT: RateLimitSettings = { ratePerSec: 50, burst: 100 };

export function createApp(deps: ApiDeps): OpenAPIHono {
  const now = deps.now ?? (() => new Date());
  const app = new OpenAPIHono();
  const service = new TunnelService(
    deps.store,
    deps.secrets,
    deps.logger,
    deps.portRange,
    now,
    deps.onTunnelChanged,
    deps.keyCrypto,
  );
  const limiter = new RateLimiter(deps.rateLimit ?? DEFAULT_RATE_LIMIT, () => now().getTime());

  app.onError(createErrorHandler(deps.logger));
  app.notFound((c) => errorResponse(c, 404, 'not_found', `no route ${c.req.method} ${c.req.path}`));
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    deps.logger.debug('request', {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
  });
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        errorResponse(c, 413, 'payload_too_large', `request body exceeds ${MAX_BODY_BYTES} bytes`),
    }),
  );

  app.get('/healthz', (c) => c.json({ ok: true }));
  app.route('/v1/admin', adminRoutes(deps.store, deps.adminTokenHash, now));
  const heartbeatIntervalMs = deps.statusTiming?.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  app.route(
    '/v1/tunnels',
    tunnelRoutes({
      service,
      store: deps.store,
      gateway: deps.gateway,
      // A worker is gone once its heartbeat is as old as a lease lasts.
      test: { store: deps.store, control: deps.workerControl, workerTtlMs: 3 * heartbeatIntervalMs, now },
      statusSettings: {
        heartbeatIntervalMs,
        keepaliveIntervalMs:
          deps.statusTiming?.keepaliveIntervalMs ?? deps.gateway.keepaliveIntervalSec * 1000,
        downGraceMs: deps.statusTiming?.downGraceMs ?? DEFAULT_DOWN_GRACE_MS,
        bindHost: deps.bindHost,
      },
      limiter,
      now,
    }),
  );

  describeRoutes(app.openAPIRegistry);
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Tunnelkeeper API', version: '1.0.0', description: 'SSH tunnels to private databases.' },
  });
  return app;
}

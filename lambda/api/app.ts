/**
 * The public HTTP API as a Hono app built from its dependencies: the Lambda handler and the local
 * stack serve the same app over different stores (compose.ts builds the dependencies).
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { PortRange } from '../../shared/config';
import type { WorkerControl } from '../../shared/control';
import type { KeyCrypto } from '../../shared/key-crypto';
import type { Logger } from '../../shared/logger';
import type { OperatorMetrics } from '../../shared/metrics/operator-metrics';
import type { SecretStore } from '../../shared/secrets/secret-store';
import type { EndpointLimits } from '../../shared/service-info';
import type { StatusSettings } from '../../shared/status';
import type { TunnelStore } from '../../shared/store/tunnel-store';
import type { GatewayInfo } from '../../shared/tunnel-view';
import { ApiKeyCache, adminAuth, apiKeyAuth } from './auth';
import type { ConsoleSource } from './console-files';
import { createErrorHandler, errorResponse } from './errors';
import { addOpenApiDocument, addServiceRoutes } from './openapi';
import { RateLimiter, type RateLimitSettings } from './rate-limit';
import type { ReadinessCheck } from './readiness';
import { adminRoutes } from './routes/admin';
import { type AlertChannelDeps, alertChannelRoutes } from './routes/alert-channels';
import { apiKeyRoutes } from './routes/api-keys';
import { consoleRoutes } from './routes/console';
import { docsRoutes } from './routes/docs';
import { infoRoutes } from './routes/info';
import { metricsRoutes } from './routes/metrics';
import { tunnelRoutes } from './routes/tunnels';
import { TunnelService } from './tunnel-service';

export interface ApiLimits {
  /** `MAX_TUNNELS_PER_WORKSPACE`. */
  maxTunnelsPerWorkspace: number;
  /** API keys a workspace may hold at once (rotation needs two; a team a few more). */
  maxApiKeysPerWorkspace: number;
  /** Requests per workspace (a per-instance guard; API Gateway throttling is the global one). */
  perWorkspace: RateLimitSettings;
  /**
   * Requests per source address that cost a credential lookup (no key, an unknown key, a failed
   * admin token): what an unauthenticated caller can make us do is bounded.
   */
  unauthenticatedPerSource: RateLimitSettings;
}

export interface ApiDeps {
  store: TunnelStore;
  secrets: SecretStore;
  logger: Logger;
  gateway: GatewayInfo;
  portRange: PortRange;
  /** SHA-256 (hex) of the operator token. */
  adminTokenHash: string;
  /** The status machine's settings, as the sweeper's. */
  statusSettings: StatusSettings;
  limits: ApiLimits;
  /** What `/readyz` checks. */
  readiness: ReadinessCheck[];
  now?: () => Date;
  /** Since when this process has seen the table without a gap (`StorageHealth.observingSince`). */
  observingSince?: () => number | undefined;
  /** The caller's address, for per-source limits; absent where the runtime does not say. */
  clientAddress?: (c: Context) => string | undefined;
  /** Told after a tunnel is changed or deleted, so a co-located gateway applies it at once. */
  onTunnelChanged?: (tunnelId: string) => void;
  /** Reaches gateway workers' control endpoints for `POST /v1/tunnels/{id}/test`. */
  workerControl: WorkerControl;
  /** Where key derivation and RSA generation run; inline (on the event loop) when absent. */
  keyCrypto?: KeyCrypto;
  /** The addresses standard tunnels connect from (`EGRESS_IPS`; in AWS the NAT gateways' EIPs). */
  egressIps: readonly string[];
  /** The gateway's limits, for `GET /v1/info`. */
  endpointLimits: EndpointLimits;
  /** The process's operator metrics, served at `GET /metrics` (`npm start`; absent in the Lambda). */
  metrics?: Pick<OperatorMetrics, 'text' | 'contentType'>;
  /** The customer console's files, served at `/`; absent, `/` answers 404. */
  console?: ConsoleSource;
  /** Alert channels: their storage, send settings (SSRF policy) and quota. */
  alertChannels: AlertChannelDeps;
}

export const MAX_BODY_BYTES = 64 * 1024;

export function createApp(deps: ApiDeps): OpenAPIHono {
  const now = deps.now ?? (() => new Date());
  const nowMs = () => now().getTime();
  const observingSince = deps.observingSince ?? (() => undefined);
  const app = new OpenAPIHono();
  const service = new TunnelService({
    store: deps.store,
    secrets: deps.secrets,
    logger: deps.logger,
    portRange: deps.portRange,
    maxTunnelsPerWorkspace: deps.limits.maxTunnelsPerWorkspace,
    now,
    onChanged: deps.onTunnelChanged,
    keyCrypto: deps.keyCrypto,
  });
  const perWorkspace = new RateLimiter(deps.limits.perWorkspace, nowMs);
  const perSource = new RateLimiter(deps.limits.unauthenticatedPerSource, nowMs);
  const sourceOf = (c: Context) => deps.clientAddress?.(c) ?? 'unknown';

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

  addServiceRoutes(app, deps.readiness, nowMs);
  const keyCache = new ApiKeyCache();
  const auth = apiKeyAuth({
    store: deps.store,
    cache: keyCache,
    logger: deps.logger,
    perWorkspace,
    perSource,
    sourceOf,
    now: nowMs,
  });
  const maxKeysPerWorkspace = deps.limits.maxApiKeysPerWorkspace;
  app.route(
    '/v1/admin',
    adminRoutes({
      store: deps.store,
      auth: adminAuth(deps.adminTokenHash, perSource, sourceOf),
      logger: deps.logger,
      maxKeysPerWorkspace,
      now,
    }),
  );
  app.route(
    '/v1/api-keys',
    apiKeyRoutes({ store: deps.store, cache: keyCache, auth, logger: deps.logger, maxKeysPerWorkspace, now }),
  );
  app.route(
    '/v1/tunnels',
    tunnelRoutes({
      service,
      store: deps.store,
      gateway: deps.gateway,
      auth,
      logger: deps.logger,
      test: {
        store: deps.store,
        control: deps.workerControl,
        liveness: deps.statusSettings,
        now,
        observingSince,
      },
      statusSettings: deps.statusSettings,
      now,
      observingSince,
    }),
  );

  app.route(
    '/v1/alert-channels',
    alertChannelRoutes({ ...deps.alertChannels, tunnels: deps.store, auth, logger: deps.logger, now }),
  );
  app.route(
    '/metrics',
    metricsRoutes({
      auth: adminAuth(deps.adminTokenHash, perSource, sourceOf),
      ...(deps.metrics ? { metrics: deps.metrics } : {}),
    }),
  );
  app.route('/v1/info', infoRoutes({ ...deps, apiLimits: deps.limits, maxBodyBytes: MAX_BODY_BYTES }));
  app.route('/docs', docsRoutes());
  app.route('/', consoleRoutes(deps.console, deps.logger));
  addOpenApiDocument(app);
  return app;
}

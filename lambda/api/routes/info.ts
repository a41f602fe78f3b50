/**
 * `GET /v1/info`: what the service offers, without credentials, before any tunnel exists: the SSH
 * endpoint and its host key, the egress IPs to allowlist, the SSH algorithms and the limits. The
 * same for every caller and fixed for the life of the process, so it is built once, and caches
 * and CDNs may keep it for a few minutes (it changes only with a deployment).
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { etag } from 'hono/etag';
import { ServiceInfoSchema } from '../../../shared/schemas';
import { type EndpointLimits, serviceInfo } from '../../../shared/service-info';
import type { GatewayInfo } from '../../../shared/tunnel-view';
import type { ApiLimits } from '../app';
import type { RateLimitSettings } from '../rate-limit';
import { addRoute, errors, json, NO_SECURITY } from '../route-spec';

export interface InfoRouteDeps {
  gateway: GatewayInfo;
  egressIps: readonly string[];
  apiLimits: ApiLimits;
  endpointLimits: EndpointLimits;
  maxBodyBytes: number;
}

/** Five minutes: a host key or an egress IP that changes reaches clients soon, yet a poller costs nothing. */
export const INFO_CACHE_CONTROL = 'public, max-age=300';

const rate = ({ ratePerSec, burst }: RateLimitSettings) => ({ requestsPerSecond: ratePerSec, burst });

export function infoRoutes(deps: InfoRouteDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  const { apiLimits } = deps;
  const body = serviceInfo({
    gateway: deps.gateway,
    egressIps: deps.egressIps,
    limits: {
      tunnelsPerWorkspace: apiLimits.maxTunnelsPerWorkspace,
      apiKeysPerWorkspace: apiLimits.maxApiKeysPerWorkspace,
      ...deps.endpointLimits,
      requestBodyBytes: deps.maxBodyBytes,
      requestsPerWorkspace: rate(apiLimits.perWorkspace),
      unauthenticatedRequestsPerSource: rate(apiLimits.unauthenticatedPerSource),
    },
  });

  addRoute(
    app,
    {
      method: 'get',
      path: '/',
      operationId: 'getServiceInfo',
      summary: 'What the service offers: SSH endpoint, host keys, egress IPs, algorithms, limits',
      description:
        'Public and the same for every caller: `sshEndpoint.hostKeys[].knownHostsLine` goes into ' +
        "`~/.ssh/known_hosts` before a reverse tunnel's first connection; `egressIps` are the addresses " +
        "to allow to a standard tunnel's bastion. Cached for 5 minutes (`ETag`, `If-None-Match`).",
      tags: ['Service'],
      security: NO_SECURITY,
      responses: {
        200: {
          ...json(ServiceInfoSchema, 'The service as this deployment runs it'),
          headers: { 'Cache-Control': { schema: { type: 'string' }, description: INFO_CACHE_CONTROL } },
        },
        304: { description: 'Unchanged since the ETag given in If-None-Match' },
        ...errors([500]),
      },
    },
    etag(),
    (c) => {
      c.header('Cache-Control', INFO_CACHE_CONTROL);
      return c.json(body);
    },
  );
  return app;
}

/**
 * The OpenAPI 3.1 document as a whole: every route describes itself where it is registered
 * (route-spec.ts); here are what the document says once (security schemes, tags, servers, info),
 * the service routes (/healthz, /readyz) and `/openapi.json` itself.
 */
import { type OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { type ReadinessCheck, readinessRoute } from './readiness';
import { addRoute, json, NO_SECURITY, TAGS } from './route-spec';

const ReadinessSchema = z
  .object({
    ok: z.boolean(),
    checks: z.record(z.string(), z.object({ ok: z.boolean(), ms: z.number(), error: z.string().optional() })),
  })
  .openapi('Readiness');

const serviceRoute = { tags: ['Service'] as ['Service'], security: NO_SECURITY };

/** `/healthz` and `/readyz`: for load balancers and orchestrators, without credentials. */
export function addServiceRoutes(app: OpenAPIHono, readiness: ReadinessCheck[], now: () => number): void {
  addRoute(
    app,
    {
      ...serviceRoute,
      method: 'get',
      path: '/healthz',
      operationId: 'getHealth',
      summary: 'Liveness',
      description: 'The process answers; says nothing about its dependencies (see /readyz).',
      responses: { 200: json(z.object({ ok: z.literal(true) }), 'Alive') },
    },
    (c) => c.json({ ok: true as const }),
  );
  addRoute(
    app,
    {
      ...serviceRoute,
      method: 'get',
      path: '/readyz',
      operationId: 'getReadiness',
      summary: 'Readiness',
      description:
        'Whether this instance can serve, dependency by dependency (answers are kept for a second).',
      responses: {
        200: json(ReadinessSchema, 'Every dependency answers'),
        503: {
          ...json(ReadinessSchema, 'A dependency does not answer: the failing check is named'),
          headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'Seconds' } },
        },
      },
    },
    readinessRoute(readiness, now),
  );
}

/** Registers what the document says once, and serves it at `/openapi.json`. */
export function addOpenApiDocument(app: OpenAPIHono): void {
  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKey', {
    type: 'http',
    scheme: 'bearer',
    description: "A workspace's API key (`tk_...`): `Authorization: Bearer <key>`",
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'adminToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'The operator token (`ADMIN_TOKEN`): `Authorization: Bearer <token>`',
  });
  addRoute(
    app,
    {
      ...serviceRoute,
      method: 'get',
      path: '/openapi.json',
      operationId: 'getOpenApiDocument',
      summary: 'This document',
      responses: { 200: json(z.object({}).passthrough(), 'The OpenAPI 3.1 document of this API') },
    },
    (c) => c.json(document(app, c)),
  );
}

/** OpenAPI 3.1's SPDX `identifier` (the generator's types still know only 3.0's `url`). */
const LICENSE = { name: 'Proprietary', identifier: 'LicenseRef-Tunnelkeeper-Proprietary' };

function document(app: OpenAPIHono, c: Context) {
  return app.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: 'Tunnelkeeper API',
      version: '1.0.0',
      description:
        'SSH tunnels from a data platform to private databases: standard tunnels through your bastion, ' +
        'reverse tunnels your host opens to us. Every error answers `{"error": {"code", "message", "details"?}}`.',
      license: LICENSE,
    },
    // Where this copy was fetched from: the same document serves npm start and every deployment.
    servers: [{ url: new URL(c.req.url).origin, description: 'This API' }],
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
  });
}

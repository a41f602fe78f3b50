/**
 * One object per route, for both the router and `/openapi.json`: `addRoute` registers the handler
 * and the route's OpenAPI description from the same spec, so the document cannot name a route the
 * app does not answer, or miss one it does (test/lambda/api/openapi.test.ts walks both).
 *
 * Requests are still parsed by the handlers (body.ts: a 400 for malformed JSON, a 422 naming each
 * field), not by zod-openapi's validators: the schemas in `request` describe what they accept.
 */
import { createRoute, type OpenAPIHono, type RouteConfig } from '@hono/zod-openapi';
import type { Env, Handler, MiddlewareHandler } from 'hono';
import { ErrorBodySchema } from '../../shared/schemas';

export interface RouteSpec extends RouteConfig {
  /** Stable, camelCase: what generated clients name the call. */
  operationId: string;
  summary: string;
  tags: [Tag];
}

export const TAGS = {
  Tunnels: 'Standard and reverse tunnels: create, read, change, delete, and act on them',
  'API keys': "The workspace's API keys: several at once, so one can be rotated or revoked",
  Operator: 'Behind the operator token: workspaces, and a new API key for any of them',
  Service: 'Health, readiness and what the service offers; no credentials needed',
  'Alert channels':
    "The workspace's own alert destinations (webhook, Slack, PagerDuty) and their delivery log",
} as const;
export type Tag = keyof typeof TAGS;

export const API_KEY_SECURITY = [{ apiKey: [] }];
export const ADMIN_SECURITY = [{ adminToken: [] }];
export const NO_SECURITY: RouteConfig['security'] = [];

/** Registers `handlers` for `spec.method` and `spec.path` on `app`, and describes the route there. */
export function addRoute<E extends Env>(
  app: OpenAPIHono<E>,
  spec: RouteSpec,
  ...handlers: [...MiddlewareHandler<E>[], Handler<E>]
): void {
  app.openAPIRegistry.registerPath(createRoute(spec));
  app.on([spec.method.toUpperCase()], [spec.path.replaceAll(/\{(\w+)\}/g, ':$1')], ...handlers);
}

export const json = <T>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});

export const jsonBody = <T>(schema: T, required = true) => ({
  body: { content: { 'application/json': { schema } }, required },
});

/** What each error status means in this API (the body is always `{"error": {code, message, details?}}`). */
const ERROR_MEANINGS = {
  400: '`invalid_json`: the body is not JSON, or is empty where one is required',
  401: '`unauthorized`: missing or invalid credentials (`WWW-Authenticate: Bearer`)',
  404: '`not_found`: no such resource in this workspace',
  409: '`conflict` (the request clashes with the current state) or `quota_exceeded` (`details` name the limit)',
  413: '`payload_too_large`: the body is over 64 KiB',
  422: '`validation_failed`: `details` name each invalid field and say why',
  429: '`rate_limited`: too many requests; retry after `Retry-After` seconds',
  500: '`internal_error`: a fault of ours, logged with the request; nothing internal is said',
  503: '`unavailable`: storage or the secret store does not answer, or the service sheds load; retry after `Retry-After` seconds',
} as const;
export type ErrorStatus = keyof typeof ERROR_MEANINGS;

/** Error responses for `statuses`; a route's own wording of one replaces the general one. */
export function errors(
  statuses: readonly ErrorStatus[],
  own: Partial<Record<ErrorStatus, string>> = {},
): Partial<Record<ErrorStatus, ReturnType<typeof json<typeof ErrorBodySchema>>>> {
  return Object.fromEntries(
    statuses.map((status) => [status, json(ErrorBodySchema, own[status] ?? ERROR_MEANINGS[status])]),
  );
}

/** What any route behind an API key or the operator token can answer besides its own. */
export const AUTHENTICATED: readonly ErrorStatus[] = [401, 413, 429, 500, 503];

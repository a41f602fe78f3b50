/**
 * Bearer authentication: API keys (looked up by hash, cached briefly) and the operator token
 * (compared in constant time). Failures all look the same to the caller. What a caller without
 * valid credentials can make us do (a table read per unknown key) is rate-limited per source.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { sha256Hex } from '../../shared/ids';
import type { TunnelStore } from '../../shared/store/tunnel-store';
import { ApiError } from './errors';
import type { RateLimiter } from './rate-limit';

export type AuthEnv = { Variables: { workspaceId: string } };

const CACHE_TTL_MS = 60_000;
const CACHE_MAX = 5_000;

function bearerToken(header: string | undefined): string | undefined {
  const match = header?.match(/^Bearer[ \t]+([A-Za-z0-9._~+/=-]{1,512})[ \t]*$/i);
  return match?.[1];
}

const unauthorized = (what: string) =>
  new ApiError(
    401,
    'unauthorized',
    `missing or invalid ${what}: send Authorization: Bearer <${what}>`,
    undefined,
    {
      'WWW-Authenticate': 'Bearer',
    },
  );

const rateLimited = (wait: number, what: string) =>
  new ApiError(429, 'rate_limited', `too many ${what}; retry in ${wait} s`, undefined, {
    'Retry-After': String(wait),
  });

/** Charges one unauthenticated attempt to the caller's source; throws 429 when its budget is spent. */
function chargeSource(limiter: RateLimiter, source: string): void {
  const wait = limiter.take(source);
  if (wait > 0) throw rateLimited(wait, 'requests without valid credentials from this address');
}

export interface ApiKeyAuthOptions {
  store: TunnelStore;
  perWorkspace: RateLimiter;
  perSource: RateLimiter;
  sourceOf: (c: Context) => string;
  now: () => number;
}

/** Resolves the caller's workspace from its API key and applies the per-workspace rate limit. */
export function apiKeyAuth(options: ApiKeyAuthOptions): MiddlewareHandler<AuthEnv> {
  const { store, perWorkspace, perSource, sourceOf, now } = options;
  const cache = new Map<string, { workspaceId: string; until: number }>();
  return async (c, next) => {
    const token = bearerToken(c.req.header('Authorization'));
    const hash = token === undefined ? undefined : sha256Hex(token);
    const cached = hash === undefined ? undefined : cache.get(hash);
    let workspaceId = cached && cached.until > now() ? cached.workspaceId : undefined;
    if (!workspaceId) {
      // A key not seen lately costs a read: bounded per source before it is spent.
      chargeSource(perSource, sourceOf(c));
      if (hash === undefined) throw unauthorized('api key');
      workspaceId = await store.findWorkspaceIdByApiKeyHash(hash);
      if (!workspaceId) throw unauthorized('api key');
      if (cache.size >= CACHE_MAX) cache.clear();
      cache.set(hash, { workspaceId, until: now() + CACHE_TTL_MS });
    }
    const wait = perWorkspace.take(workspaceId);
    if (wait > 0) throw rateLimited(wait, 'requests');
    c.set('workspaceId', workspaceId);
    await next();
  };
}

/** Accepts only the operator token, whose SHA-256 is `adminTokenHash`; failures cost the source. */
export function adminAuth(
  adminTokenHash: string,
  perSource: RateLimiter,
  sourceOf: (c: Context) => string,
): MiddlewareHandler {
  const expected = Buffer.from(adminTokenHash, 'hex');
  return async (c, next) => {
    const token = bearerToken(c.req.header('Authorization'));
    const given = Buffer.from(sha256Hex(token ?? ''), 'hex');
    if (!token || !timingSafeEqual(given, expected)) {
      chargeSource(perSource, sourceOf(c));
      throw unauthorized('admin token');
    }
    await next();
  };
}

/**
 * Bearer authentication: API keys (looked up by hash, cached briefly) and the operator token
 * (compared in constant time). Failures all look the same to the caller.
 */
import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
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

/** Resolves the caller's workspace from its API key and applies the per-workspace rate limit. */
export function apiKeyAuth(
  store: TunnelStore,
  limiter: RateLimiter,
  now: () => number,
): MiddlewareHandler<AuthEnv> {
  const cache = new Map<string, { workspaceId: string; until: number }>();
  return async (c, next) => {
    const token = bearerToken(c.req.header('Authorization'));
    if (!token) throw unauthorized('api key');
    const hash = sha256Hex(token);
    const cached = cache.get(hash);
    let workspaceId = cached && cached.until > now() ? cached.workspaceId : undefined;
    if (!workspaceId) {
      workspaceId = await store.findWorkspaceIdByApiKeyHash(hash);
      if (!workspaceId) throw unauthorized('api key');
      if (cache.size >= CACHE_MAX) cache.clear();
      cache.set(hash, { workspaceId, until: now() + CACHE_TTL_MS });
    }
    const wait = limiter.take(workspaceId);
    if (wait > 0) {
      throw new ApiError(429, 'rate_limited', `too many requests; retry in ${wait} s`, undefined, {
        'Retry-After': String(wait),
      });
    }
    c.set('workspaceId', workspaceId);
    await next();
  };
}

/** Accepts only the operator token, whose SHA-256 is `adminTokenHash`. */
export function adminAuth(adminTokenHash: string): MiddlewareHandler {
  const expected = Buffer.from(adminTokenHash, 'hex');
  return async (c, next) => {
    const token = bearerToken(c.req.header('Authorization'));
    const given = Buffer.from(sha256Hex(token ?? ''), 'hex');
    if (!token || !timingSafeEqual(given, expected)) throw unauthorized('admin token');
    await next();
  };
}

/**
 * Bearer authentication: API keys (looked up by hash, cached briefly) and the operator token
 * (compared in constant time). Failures all look the same to the caller. What a caller without
 * valid credentials can make us do (a table read per unknown key) is rate-limited per source.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { LAST_USED_RESOLUTION_MS } from '../../shared/api-keys';
import { sha256Hex } from '../../shared/ids';
import type { Logger } from '../../shared/logger';
import type { WorkspaceStore } from '../../shared/store/tunnel-store';
import { ApiError } from './errors';
import type { RateLimiter } from './rate-limit';

export type AuthEnv = { Variables: { workspaceId: string; apiKeyId: string } };

const CACHE_TTL_MS = 60_000;
const CACHE_MAX = 5_000;

interface CachedKey {
  workspaceId: string;
  keyId: string;
  until: number;
}

/**
 * Keys seen lately (by hash), so a busy key costs a table read a minute, not one per request. A key
 * revoked here is dropped at once; other instances drop it within `CACHE_TTL_MS`.
 */
export class ApiKeyCache {
  private readonly entries = new Map<string, CachedKey>();
  /**
   * Lookups under way, by hash: the requests of a busy client that all miss when its entry lapses
   * share one read (and one charge to their source), instead of each spending the budget meant for
   * callers without valid credentials (a burst of 30 creates was answered 429 that way).
   */
  private readonly lookups = new Map<string, Promise<CachedKey | undefined>>();
  /** When each key was last marked used by this instance (bounded like the cache). */
  private readonly marked = new Map<string, number>();

  get(hash: string, now: number): CachedKey | undefined {
    const hit = this.entries.get(hash);
    return hit && hit.until > now ? hit : undefined;
  }

  set(hash: string, workspaceId: string, keyId: string, now: number): void {
    if (this.entries.size >= CACHE_MAX) this.entries.clear();
    this.entries.set(hash, { workspaceId, keyId, until: now + CACHE_TTL_MS });
  }

  /** The lookup of `hash` under way, if any. */
  pendingLookup(hash: string): Promise<CachedKey | undefined> | undefined {
    return this.lookups.get(hash);
  }

  /** Records `lookup` as the one under way for `hash` until it settles. */
  trackLookup(hash: string, lookup: Promise<CachedKey | undefined>): Promise<CachedKey | undefined> {
    const tracked = lookup.finally(() => this.lookups.delete(hash));
    this.lookups.set(hash, tracked);
    return tracked;
  }

  forget(hash: string): void {
    this.entries.delete(hash);
    this.marked.delete(hash);
  }

  /** Whether to write `lastUsedAt` now: at most once per resolution per key and instance. */
  shouldMarkUsed(hash: string, now: number): boolean {
    const last = this.marked.get(hash);
    if (last !== undefined && now - last < LAST_USED_RESOLUTION_MS) return false;
    if (this.marked.size >= CACHE_MAX) this.marked.clear();
    this.marked.set(hash, now);
    return true;
  }

  /** The mark's write failed: the key's next request tries again rather than a resolution later. */
  markFailed(hash: string): void {
    this.marked.delete(hash);
  }
}

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
  store: WorkspaceStore;
  cache: ApiKeyCache;
  logger: Logger;
  perWorkspace: RateLimiter;
  perSource: RateLimiter;
  sourceOf: (c: Context) => string;
  now: () => number;
}

/** Resolves the caller's workspace from its API key and applies the per-workspace rate limit. */
export function apiKeyAuth(options: ApiKeyAuthOptions): MiddlewareHandler<AuthEnv> {
  const { store, cache, logger, perWorkspace, perSource, sourceOf, now } = options;
  return async (c, next) => {
    const token = bearerToken(c.req.header('Authorization'));
    const hash = token === undefined ? undefined : sha256Hex(token);
    let key = hash === undefined ? undefined : cache.get(hash, now());
    if (!key) {
      if (hash === undefined) {
        chargeSource(perSource, sourceOf(c));
        throw unauthorized('api key');
      }
      let lookup = cache.pendingLookup(hash);
      if (!lookup) {
        // A key not seen lately costs a read: bounded per source before it is spent. Joining a
        // lookup under way costs nothing more.
        chargeSource(perSource, sourceOf(c));
        lookup = cache.trackLookup(hash, lookUpApiKey(store, cache, hash, now));
      }
      key = await lookup;
      if (!key) throw unauthorized('api key');
    }
    const wait = perWorkspace.take(key.workspaceId);
    if (wait > 0) throw rateLimited(wait, 'requests');
    if (hash !== undefined && cache.shouldMarkUsed(hash, now())) {
      // Off the request's path: a failed mark is retried with the key's next request.
      const { keyId } = key;
      store.markApiKeyUsed(key.workspaceId, keyId, new Date(now()).toISOString()).catch((err) => {
        cache.markFailed(hash);
        logger.warn('API key use not recorded', { keyId, err });
      });
    }
    c.set('workspaceId', key.workspaceId);
    c.set('apiKeyId', key.keyId);
    await next();
  };
}

/** Reads a key by hash (adopting one from before key ids) and caches what it finds. */
async function lookUpApiKey(
  store: WorkspaceStore,
  cache: ApiKeyCache,
  hash: string,
  now: () => number,
): Promise<CachedKey | undefined> {
  const found = await store.findApiKey(hash);
  const keyId = found && (await store.adoptLegacyKey(hash, found));
  if (!found || !keyId) return undefined;
  cache.set(hash, found.workspaceId, keyId, now());
  return { workspaceId: found.workspaceId, keyId, until: 0 };
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

/**
 * The console's client of the public API: same origin, relative URLs (the page may sit under a
 * path), the key in the Authorization header only (never in a URL, never logged). Polls send the
 * last ETag in If-None-Match so an unchanged answer is a 304 with no body.
 */
import type { StatusErrorCode, TestResult, Tunnel, TunnelEvent } from '../../shared/schemas';

export type { StatusErrorCode, TestResult, Tunnel, TunnelEvent };

export interface TunnelPage {
  items: Tunnel[];
  nextCursor?: string;
  unreadable?: { id: string; message: string }[];
}

export interface ServiceInfo {
  sshEndpoint: {
    host: string;
    port: number;
    hostKeys: { type: string; fingerprint: string; knownHostsLine: string }[];
  };
  egressIps: string[];
}

/** An error answer of the API (`{"error": {code, message, details}}`), or a network failure. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** How long a request may take before the console says so (a test of a slow bastion takes a while). */
const TIMEOUT_MS = 60_000;

export type Fresh<T> = { changed: true; body: T; etag: string | undefined } | { changed: false };

export class Api {
  constructor(
    private readonly key: string,
    /** Told when the API no longer accepts the key (revoked meanwhile). */
    private readonly onUnauthorized: () => void = () => {},
  ) {}

  list(query: { state?: string; cursor?: string; limit: number }, etag?: string): Promise<Fresh<TunnelPage>> {
    const params = new URLSearchParams({ limit: String(query.limit) });
    if (query.state) params.set('state', query.state);
    if (query.cursor) params.set('cursor', query.cursor);
    return this.poll(`v1/tunnels?${params}`, etag);
  }

  tunnel(id: string, etag?: string): Promise<Fresh<Tunnel>> {
    return this.poll(`v1/tunnels/${encodeURIComponent(id)}`, etag);
  }

  events(id: string): Promise<{ items: TunnelEvent[] }> {
    return this.call('GET', `v1/tunnels/${encodeURIComponent(id)}/events`);
  }

  info(): Promise<ServiceInfo> {
    return this.call('GET', 'v1/info');
  }

  create(body: unknown): Promise<Tunnel> {
    return this.call('POST', 'v1/tunnels', body);
  }

  patch(id: string, body: unknown): Promise<Tunnel> {
    return this.call('PATCH', `v1/tunnels/${encodeURIComponent(id)}`, body);
  }

  rotateKey(id: string, body?: unknown): Promise<Tunnel> {
    return this.call('POST', `v1/tunnels/${encodeURIComponent(id)}/rotate-key`, body);
  }

  remove(id: string): Promise<void> {
    return this.call('DELETE', `v1/tunnels/${encodeURIComponent(id)}`);
  }

  test(id: string): Promise<TestResult> {
    return this.call('POST', `v1/tunnels/${encodeURIComponent(id)}/test`);
  }

  private async poll<T>(path: string, etag: string | undefined): Promise<Fresh<T>> {
    const res = await this.send('GET', path, undefined, etag);
    if (res.status === 304) return { changed: false };
    return { changed: true, body: (await res.json()) as T, etag: res.headers.get('ETag') ?? undefined };
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  private async send(method: string, path: string, body?: unknown, etag?: string): Promise<Response> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.key}`,
      Accept: 'application/json',
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (etag) headers['If-None-Match'] = etag;
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        // The console handles 304 itself; the browser's cache must neither answer nor revalidate.
        cache: 'no-store',
        credentials: 'omit',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      const timedOut = err instanceof DOMException && err.name === 'TimeoutError';
      throw new ApiError(
        0,
        'network',
        timedOut ? 'The API did not answer in time.' : 'The API cannot be reached.',
      );
    }
    if (res.ok || res.status === 304) return res;
    const error = await errorOf(res);
    if (res.status === 401) this.onUnauthorized();
    throw error;
  }
}

/** The error body of a failed answer, or a plain description when it has none. */
async function errorOf(res: Response): Promise<ApiError> {
  try {
    const body: unknown = await res.json();
    if (body && typeof body === 'object' && 'error' in body) {
      const e = (body as { error: unknown }).error;
      if (e && typeof e === 'object' && 'code' in e && 'message' in e) {
        const { code, message, details } = e as { code: unknown; message: unknown; details?: unknown };
        if (typeof code === 'string' && typeof message === 'string')
          return new ApiError(res.status, code, message, details);
      }
    }
  } catch {
    // not JSON: fall through
  }
  const retry = res.headers.get('Retry-After');
  return new ApiError(
    res.status,
    'http_error',
    `The API answered ${res.status}${retry ? `; retry in ${retry} s` : ''}.`,
  );
}

/** Field path → message, from a 422 `validation_failed` (details `[{path, message}]`). */
export function fieldErrors(err: unknown): Record<string, string> {
  if (!(err instanceof ApiError) || err.code !== 'validation_failed' || !Array.isArray(err.details))
    return {};
  const out: Record<string, string> = {};
  for (const issue of err.details) {
    if (issue && typeof issue === 'object' && typeof issue.message === 'string') {
      const path = typeof issue.path === 'string' ? issue.path : '';
      out[path] = out[path] ? `${out[path]}; ${issue.message}` : issue.message;
    }
  }
  return out;
}

/**
 * The public API of a stack running as its own process (`npm start`), called over HTTP with an
 * API key. `baseUrl` is a function because a restarted stack listens on a new port.
 */
import { type Tunnel, TunnelSchema } from '../../shared/schemas';
import { waitFor } from './wait-for';

export interface ApiResponse {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests probe response fields of many shapes
  json: any;
}

export function apiClient(baseUrl: () => string, apiKey: string) {
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse> => {
    const res = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${apiKey}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
  };

  const getTunnel = async (id: string): Promise<Tunnel> => {
    const res = await call('GET', `/v1/tunnels/${id}`);
    if (res.status !== 200) throw new Error(`GET tunnel ${id}: ${res.status} ${JSON.stringify(res.json)}`);
    return TunnelSchema.parse(res.json);
  };

  return {
    call,
    getTunnel,
    async createReverse(name: string, service: { host: string; port: number }, publicKey: string) {
      const res = await call('POST', '/v1/tunnels', { type: 'reverse', name, service, publicKey });
      if (res.status !== 201)
        throw new Error(`create reverse tunnel: ${res.status} ${JSON.stringify(res.json)}`);
      return TunnelSchema.parse(res.json);
    },
    /** Every tunnel of the workspace, one page of up to 100. */
    async listTunnels(): Promise<Tunnel[]> {
      const res = await call('GET', '/v1/tunnels?limit=100');
      if (res.status !== 200) throw new Error(`GET tunnels: ${res.status} ${JSON.stringify(res.json)}`);
      return TunnelSchema.array().parse(res.json.items);
    },
    /** Polls the tunnel until `accept` holds; the timeout names the last status seen. */
    async waitForTunnel(id: string, accept: (t: Tunnel) => boolean, timeoutMs: number): Promise<Tunnel> {
      let last: unknown;
      try {
        return await waitFor(
          async () => {
            const tunnel = await getTunnel(id);
            last = tunnel.status;
            return accept(tunnel) ? tunnel : undefined;
          },
          timeoutMs,
          { intervalMs: 50, what: `tunnel ${id}` },
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}; last status ${JSON.stringify(last)}`);
      }
    },
  };
}

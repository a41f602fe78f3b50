/**
 * The worker's internal control endpoint: `POST /tunnels/<id>/test` for the API's test route and
 * `POST /tunnels/<id>/reconnect` for its reconnect route, authenticated by the control token; and
 * `GET /metrics` (Prometheus text, docs/metrics.md) for the operator's scraper, authenticated by the
 * operator token. Bearer tokens compared in constant time; bound to the worker's VPC address only.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { ReconnectOutcome } from '../shared/control';
import { OverloadedError } from '../shared/errors';
import type { Logger } from '../shared/logger';
import type { TestResult } from '../shared/schemas';

const TUNNEL_PATH = /^\/tunnels\/(tun_[a-z2-7]{16})\/(test|reconnect)$/;

export interface ControlServerOptions {
  host: string;
  port: number;
  token: string;
  logger: Logger;
  /** Undefined when the tunnel does not exist. */
  testTunnel(tunnelId: string): Promise<TestResult | undefined>;
  /** Drops the backoff of a standard tunnel this worker serves; undefined when it serves none such. */
  reconnectTunnel(tunnelId: string): ReconnectOutcome | undefined;
  /** Served at `GET /metrics`. */
  metrics?: { text(): Promise<string>; contentType: string };
  /** SHA-256 (hex) of the operator token; without it `GET /metrics` refuses every caller. */
  adminTokenHash?: string;
}

export class ControlServer {
  private readonly server: Server;
  private readonly expected: Buffer;
  /** What `Authorization` must hash to for `GET /metrics`; a random value when no operator token is known. */
  private readonly expectedAdmin: Buffer;

  constructor(private readonly options: ControlServerOptions) {
    this.expected = digest(`Bearer ${options.token}`);
    this.expectedAdmin = options.adminTokenHash
      ? digest(`Bearer ${options.adminTokenHash}`)
      : digest(`Bearer ${randomBytes(32).toString('hex')}`);
    this.server = createServer((req, res) => {
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method === 'GET' && req.url === '/metrics') {
        this.serveMetrics(req.headers.authorization, res, reply);
        return;
      }
      if (!timingSafeEqual(digest(req.headers.authorization ?? ''), this.expected)) {
        reply(401, { error: 'unauthorized' });
        return;
      }
      const match = req.method === 'POST' ? TUNNEL_PATH.exec(req.url ?? '') : null;
      if (!match?.[1]) {
        reply(404, { error: 'not found' });
        return;
      }
      const tunnelId = match[1];
      req.resume(); // no body expected
      if (match[2] === 'reconnect') {
        const outcome = options.reconnectTunnel(tunnelId);
        if (outcome) reply(202, { outcome });
        else reply(404, { error: 'tunnel not served here' });
        return;
      }
      options.testTunnel(tunnelId).then(
        (result) => (result ? reply(200, result) : reply(404, { error: 'no such tunnel' })),
        (err: unknown) => {
          if (err instanceof OverloadedError) {
            options.logger.warn('tunnel test shed: overloaded', { tunnelId, resource: err.resource });
            reply(503, { error: 'overloaded' });
            return;
          }
          options.logger.error('tunnel test failed internally', { tunnelId, err });
          reply(500, { error: 'internal error' });
        },
      );
    });
  }

  /** `GET /metrics`: the operator token's hash compared with the hash on file, in constant time. */
  private serveMetrics(
    authorization: string | undefined,
    res: ServerResponse,
    reply: (status: number, body: unknown) => void,
  ): void {
    const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1] ?? '';
    const presented = digest(`Bearer ${createHash('sha256').update(token).digest('hex')}`);
    if (!timingSafeEqual(presented, this.expectedAdmin)) {
      reply(401, { error: 'unauthorized' });
      return;
    }
    const { metrics, logger } = this.options;
    if (!metrics) {
      reply(404, { error: 'not found' });
      return;
    }
    metrics.text().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' });
        res.end(text);
      },
      (err: unknown) => {
        logger.error('metrics could not be collected', { err });
        reply(500, { error: 'internal error' });
      },
    );
  }

  /** Listens; resolves with the URL peers use. */
  listen(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        const port = typeof address === 'object' && address ? address.port : this.options.port;
        const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
        resolve(`http://${host}:${port}`);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

const digest = (value: string) => createHash('sha256').update(value).digest();

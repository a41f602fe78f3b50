/**
 * The worker's internal control endpoint: `POST /tunnels/<id>/test` for the API's test route,
 * `POST /tunnels/<id>/reconnect` for its reconnect route, the `/tunnels/<id>/relay` upgrade
 * other gateways relay platform connections through and `POST /pool/poll` by which they offer
 * standard tunnels (fargate/peers/), authenticated by the control token; and `GET /metrics` (Prometheus text, docs/metrics.md) for the operator's scraper,
 * authenticated by the operator token. Bearer tokens compared in constant time; bound to the
 * worker's VPC address only.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ReconnectOutcome } from '../shared/control';
import { OverloadedError } from '../shared/errors';
import type { Logger } from '../shared/logger';
import type { TestResult } from '../shared/schemas';
import { RELAY_ORIGIN_HEADER, RELAY_UPGRADE } from './peers/peer-relay';
import { POOL_POLL_PATH } from './peers/pool-nudge';
import { joinSocketAndChannel, type SshChannel } from './pipe';

const TUNNEL_PATH = /^\/tunnels\/(tun_[a-z2-7]{16})\/(test|reconnect)$/;
const RELAY_PATH = /^\/tunnels\/(tun_[a-z2-7]{16})\/relay$/;
const REFUSED = 'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';

export interface ControlServerOptions {
  host: string;
  port: number;
  token: string;
  logger: Logger;
  /** Undefined when the tunnel does not exist. */
  testTunnel(tunnelId: string): Promise<TestResult | undefined>;
  /** Drops the backoff of a standard tunnel this worker serves; undefined when it serves none such. */
  reconnectTunnel(tunnelId: string): ReconnectOutcome | undefined;
  /** A peer offers standard tunnels (`POST /pool/poll`): look at the leases now. */
  pollPool?(): void;
  /** A channel through this worker's own sessions of the tunnel, for a peer's relayed connection. */
  relay?(tunnelId: string, origin: { ip: string; port: number }): Promise<SshChannel>;
  /** `DATA_IDLE_TIMEOUT_MS` for relayed connections. */
  relayIdleTimeoutMs?: number;
  /** Served at `GET /metrics`. */
  metrics?: { text(): Promise<string>; contentType: string };
  /** SHA-256 (hex) of the operator token; without it `GET /metrics` refuses every caller. */
  adminTokenHash?: string;
}

export class ControlServer {
  private readonly server: Server;
  private readonly expected: Buffer;
  private readonly relayed = new Set<Duplex>();
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
      if (req.method === 'POST' && req.url === POOL_POLL_PATH && options.pollPool) {
        req.resume(); // no body expected
        options.pollPool();
        reply(202, { outcome: 'polling' });
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
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
  }

  /** A peer's relayed platform connection: switch protocols once the channel is open, else refuse. */
  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const match = RELAY_PATH.exec(req.url ?? '');
    const { relay, logger } = this.options;
    const isAuthorized = timingSafeEqual(digest(req.headers.authorization ?? ''), this.expected);
    if (!isAuthorized || !match?.[1] || !relay || req.headers.upgrade !== RELAY_UPGRADE) {
      socket.end(
        isAuthorized
          ? REFUSED
          : 'HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      );
      return;
    }
    const tunnelId = match[1];
    const [ip = '0.0.0.0', port = '0'] = String(req.headers[RELAY_ORIGIN_HEADER] ?? '').split(' ');
    relay(tunnelId, { ip, port: Number(port) || 0 }).then(
      (channel) => {
        if (socket.destroyed) {
          channel.destroy();
          return;
        }
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${RELAY_UPGRADE}\r\nConnection: Upgrade\r\n\r\n`,
        );
        if (head.length > 0) channel.write(head);
        logger.debug('relayed connection carried', { tunnelId, origin: `${ip}:${port}` });
        this.relayed.add(socket);
        socket.once('close', () => this.relayed.delete(socket));
        joinSocketAndChannel(socket as Socket, channel, {
          idleTimeoutMs: this.options.relayIdleTimeoutMs ?? 3_600_000,
        });
      },
      (err: unknown) => {
        logger.info('relayed connection refused: no session here carries the tunnel', {
          tunnelId,
          reason: err instanceof Error ? err.message : String(err),
        });
        socket.end(REFUSED);
      },
    );
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

  /**
   * Stops accepting; resolves once every connection ended. Relayed connections (no longer HTTP to
   * the server) end with the sessions that carry them, or are destroyed by `destroyRelayed`.
   */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** Ends every relayed connection still open (the last step of a shutdown). */
  destroyRelayed(): void {
    for (const socket of this.relayed) socket.destroy();
  }

  /** Relayed connections open now. */
  get relayedCount(): number {
    return this.relayed.size;
  }
}

const digest = (value: string) => createHash('sha256').update(value).digest();

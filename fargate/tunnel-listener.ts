/**
 * A tunnel's listener on `TUNNEL_BIND_HOST:<port>`: where the platform's workloads connect. Each
 * accepted connection becomes one channel through the tunnel's current SSH connection; the target
 * can be switched without closing the listener, so a takeover refuses no connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../shared/logger';
import type { TunnelType } from '../shared/metrics/operator-metrics';
import { joinSocketAndChannel, type SshChannel } from './pipe';
import type { TrafficMeter } from './traffic-meter';

/** Opens a channel for a platform connection; rejects if the tunnel cannot carry it. */
export type ChannelOpener = (origin: { ip: string; port: number }) => Promise<SshChannel>;

export interface ListenerOptions {
  tunnelId: string;
  host: string;
  port: number;
  /** Concurrent connections allowed through this tunnel; more are refused at once. */
  maxChannels: number;
  /** A connection with no byte either way for this long is closed (`DATA_IDLE_TIMEOUT_MS`). */
  idleTimeoutMs: number;
  logger: Logger;
  /** Counts the connections and bytes through this tunnel, of this type, while it listens. */
  traffic?: { meter: TrafficMeter; type: TunnelType };
}

export class TunnelListener {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private opener: ChannelOpener | undefined;
  /** Open connections by the opener that carries them: a session a rotation replaced drains its own. */
  private readonly carried = new Map<ChannelOpener, Set<Socket>>();
  private readonly drainWaiters = new Map<ChannelOpener, (() => void)[]>();

  constructor(private readonly options: ListenerOptions) {
    // allowHalfOpen: a client that shuts down its sending side still gets the whole answer.
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
  }

  get activeConnections(): number {
    return this.sockets.size;
  }

  /** Starts listening; rejects with EADDRINUSE and the like. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host: this.options.host, port: this.options.port, exclusive: true }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) =>
          this.options.logger.error('tunnel listener failed', { tunnelId: this.options.tunnelId, err }),
        );
        this.options.traffic?.meter.serve(this.options.tunnelId, this.options.traffic.type);
        resolve();
      });
    });
  }

  /** Routes new connections to `opener` (a new SSH connection after a takeover). */
  setOpener(opener: ChannelOpener | undefined): void {
    this.opener = opener;
  }

  /** Where new connections go now (undefined while the tunnel cannot carry any). */
  get currentOpener(): ChannelOpener | undefined {
    return this.opener;
  }

  /** Connections open now that `opener` carries (those accepted while it was current). */
  connectionsVia(opener: ChannelOpener): number {
    return this.carried.get(opener)?.size ?? 0;
  }

  /** Resolves once no connection that `opener` carries is open (at once when none is). */
  whenDrained(opener: ChannelOpener): Promise<void> {
    if (this.connectionsVia(opener) === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const waiters = this.drainWaiters.get(opener) ?? [];
      waiters.push(resolve);
      this.drainWaiters.set(opener, waiters);
    });
  }

  /** Stops accepting and drops every connection still open. */
  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.options.traffic?.meter.stop(this.options.tunnelId);
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    const { tunnelId, maxChannels, logger, traffic } = this.options;
    const failed = () => traffic?.meter.failed(traffic.type);
    socket.on('error', () => {}); // errors are handled by the pipe or the destroy below
    if (this.sockets.size >= maxChannels) {
      logger.warn('tunnel connection refused: channel limit reached', { tunnelId, maxChannels });
      failed();
      socket.destroy();
      return;
    }
    const opener = this.opener;
    if (!opener) {
      failed();
      socket.destroy();
      return;
    }
    const acceptedAt = performance.now();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    this.carry(opener, socket);
    socket.pause(); // hold early bytes until the channel exists
    const origin = { ip: socket.remoteAddress ?? '0.0.0.0', port: socket.remotePort ?? 0 };
    opener(origin).then(
      (channel) => {
        if (socket.destroyed) {
          channel.destroy();
          return;
        }
        traffic?.meter.opened(tunnelId, socket, (performance.now() - acceptedAt) / 1000);
        joinSocketAndChannel(socket, channel, {
          idleTimeoutMs: this.options.idleTimeoutMs,
          onIdle: () =>
            logger.info('tunnel connection closed: idle', { tunnelId, idleMs: this.options.idleTimeoutMs }),
        });
        socket.resume();
      },
      (err: unknown) => {
        logger.warn('tunnel connection refused: channel could not open', {
          tunnelId,
          reason: err instanceof Error ? err.message : String(err),
        });
        failed();
        socket.destroy();
      },
    );
  }

  private carry(opener: ChannelOpener, socket: Socket): void {
    const set = this.carried.get(opener) ?? new Set<Socket>();
    set.add(socket);
    this.carried.set(opener, set);
    socket.once('close', () => {
      set.delete(socket);
      if (set.size > 0) return;
      this.carried.delete(opener);
      const waiters = this.drainWaiters.get(opener) ?? [];
      this.drainWaiters.delete(opener);
      for (const resolve of waiters) resolve();
    });
  }
}

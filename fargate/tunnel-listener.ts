/**
 * A tunnel's listener on `TUNNEL_BIND_HOST:<port>`: where the platform's workloads connect. Each
 * accepted connection becomes one channel through the tunnel's current SSH connection; the target
 * can be switched without closing the listener, so a takeover refuses no connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../shared/logger';
import type { TunnelType } from '../shared/tunnel';
import { joinWithFirstByteRetry } from './first-byte-retry';
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
  /**
   * Given: a channel lost before the service answered, because what carried it is gone (true),
   * is replaced by another from the opener, the client's bytes replayed (first-byte-retry.ts).
   */
  isCarrierLost?: (channel: SshChannel) => boolean;
  /**
   * Given: connections that come before the first opener is set wait for it up to this long (a
   * standard tunnel taken over from a gateway that still serves it), instead of failing at once.
   */
  holdForFirstOpenerMs?: number;
  /** Counts the connections and bytes through this tunnel, of this type, while it listens. */
  traffic?: { meter: TrafficMeter; type: TunnelType };
}

/** Channels one platform connection may go through before the service answers. */
const MAX_OPEN_ATTEMPTS = 4;
/** What a client may send before the service's first byte and still be retried (a TLS hello fits). */
const MAX_REPLAY_BYTES = 64 * 1024;

export class TunnelListener {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private opener: ChannelOpener | undefined;
  /** Open connections by the opener that carries them: a session a rotation replaced drains its own. */
  private readonly carried = new Map<ChannelOpener, Set<Socket>>();
  private readonly drainWaiters = new Map<ChannelOpener, (() => void)[]>();
  /** Connections waiting for the first opener (`holdForFirstOpenerMs`). */
  private readonly parked = new Map<Socket, { timer: NodeJS.Timeout; acceptedAt: number }>();
  private hasHadOpener = false;

  constructor(private readonly options: ListenerOptions) {
    // allowHalfOpen: a client that shuts down its sending side still gets the whole answer.
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
  }

  get tunnelId(): string {
    return this.options.tunnelId;
  }

  get activeConnections(): number {
    return this.sockets.size;
  }

  /** Starts listening; rejects with EADDRINUSE and the like. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      // reusePort (SO_REUSEPORT): every gateway on a host listens on a tunnel's port at once, and
      // the kernel spreads connections over them (the local stand-in for the NLB over all tasks).
      const { host, port } = this.options;
      this.server.listen({ host, port, exclusive: true, reusePort: true }, () => {
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
    if (!opener) return;
    this.hasHadOpener = true;
    for (const [socket, { timer, acceptedAt }] of this.parked) {
      clearTimeout(timer);
      this.parked.delete(socket);
      if (!socket.destroyed) this.route(socket, opener, acceptedAt);
    }
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

  /**
   * Stops accepting; connections already accepted go on. On a port other gateways share, what the
   * kernel still queued here moves to them when `net.ipv4.tcp_migrate_req` is 1.
   */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
  }

  /** Stops accepting and drops every connection still open. */
  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.options.traffic?.meter.stop(this.options.tunnelId);
    if (!this.server.listening) return Promise.resolve();
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
    const acceptedAt = performance.now();
    const opener = this.opener;
    if (!opener) {
      if (this.options.holdForFirstOpenerMs !== undefined && !this.hasHadOpener) {
        this.park(socket, acceptedAt, this.options.holdForFirstOpenerMs);
        return;
      }
      failed();
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    this.route(socket, opener, acceptedAt);
  }

  /**
   * Holds a connection that came before the first session (a takeover's: the previous owner still
   * serves, and its queue moves here when it stops listening) until that session is up, or fails it.
   */
  private park(socket: Socket, acceptedAt: number, holdMs: number): void {
    const { tunnelId, logger, traffic } = this.options;
    socket.pause();
    this.sockets.add(socket);
    const timer = setTimeout(() => {
      this.parked.delete(socket);
      logger.warn('tunnel connection refused: no session within the hold', { tunnelId, holdMs });
      traffic?.meter.failed(traffic.type);
      socket.destroy();
    }, holdMs);
    this.parked.set(socket, { timer, acceptedAt });
    socket.once('close', () => {
      clearTimeout(timer);
      this.parked.delete(socket);
      this.sockets.delete(socket);
    });
  }

  private route(socket: Socket, opener: ChannelOpener, acceptedAt: number): void {
    const { tunnelId, logger, traffic } = this.options;
    const failed = () => traffic?.meter.failed(traffic.type);
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
        const join = {
          idleTimeoutMs: this.options.idleTimeoutMs,
          onIdle: () =>
            logger.info('tunnel connection closed: idle', { tunnelId, idleMs: this.options.idleTimeoutMs }),
        };
        const { isCarrierLost } = this.options;
        if (!isCarrierLost) {
          joinSocketAndChannel(socket, channel, join);
          socket.resume();
          return;
        }
        joinWithFirstByteRetry(socket, channel, {
          open: () => opener(origin),
          isCarrierLost,
          maxAttempts: MAX_OPEN_ATTEMPTS,
          maxReplayBytes: MAX_REPLAY_BYTES,
          join,
          onRetry: (attempt) =>
            logger.info('tunnel connection lost before the first byte; retried', { tunnelId, attempt }),
          onEnd: (attempts, isLost) =>
            logger.debug('tunnel connection ended before the first byte', { tunnelId, attempts, isLost }),
        });
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

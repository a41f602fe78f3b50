/**
 * Silent TCP clients for the SSH endpoint: connections that never send an identification string
 * (they read and ignore ours), from a set of loopback source addresses, kept at a number by
 * reopening each one the gateway closes, as a flood would, at a bounded rate and up to a bounded
 * total. Each connection's lifetime is recorded: how long the gateway let it live.
 */
import { connect, type Socket } from 'node:net';

export interface SilentClientsOptions {
  port: number;
  /** Local addresses to connect from, round robin (127.0.0.0/8: each is a distinct source). */
  sources: readonly string[];
  /** Connections held open at once (as far as the gateway lets them). */
  count: number;
  /** New connections per second at most (the first `count` and every reopen). */
  opensPerSecond: number;
  /** Connections opened in all at most. */
  maxOpens: number;
}

export interface SilentLife {
  source: string;
  /** ms (performance.now()) */
  openedAt: number;
  closedAt?: number;
}

export class SilentClients {
  private readonly sockets = new Set<Socket>();
  readonly lives: SilentLife[] = [];
  private opens = 0;
  private connectFailures = 0;
  private reopening = true;
  private nextSource = 0;
  private tokens: number;
  private lastRefill = performance.now();
  private readonly waiting: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SilentClientsOptions) {
    this.tokens = options.opensPerSecond / 10;
  }

  /** Open connections right now. */
  get open(): number {
    return this.sockets.size;
  }

  get opened(): number {
    return this.opens;
  }

  /** Connects that failed outright (refused, reset before `connect`). */
  get failedConnects(): number {
    return this.connectFailures;
  }

  /** Opens `count` connections (at the rate limit) and keeps reopening those the gateway closes. */
  start(): void {
    this.timer = setInterval(() => this.refill(), 10);
    for (let i = 0; i < this.options.count; i++) this.slot();
  }

  /** No more reopening: what is open stays open until the gateway closes it. */
  stopReopening(): void {
    this.reopening = false;
    clearInterval(this.timer);
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** Resolves with true once the gateway has closed every connection, false at the deadline. */
  async waitAllClosed(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.sockets.size > 0) {
      if (performance.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return true;
  }

  /** Closes whatever is still open (clean-up). */
  destroy(): void {
    this.stopReopening();
    for (const socket of this.sockets) socket.destroy();
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(
      this.options.opensPerSecond / 10,
      this.tokens + ((now - this.lastRefill) / 1000) * this.options.opensPerSecond,
    );
    this.lastRefill = now;
    while (this.tokens >= 1 && this.waiting.length > 0) {
      this.tokens--;
      this.waiting.shift()?.();
    }
  }

  /** One slot of the flood: a connection, reopened whenever the gateway closes it. */
  private async slot(): Promise<void> {
    while (this.reopening && this.opens < this.options.maxOpens) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
      if (!this.reopening || this.opens >= this.options.maxOpens) return;
      this.opens++;
      await this.once();
    }
  }

  /** Resolves when this connection has closed. */
  private once(): Promise<void> {
    const source = this.options.sources[this.nextSource++ % this.options.sources.length] ?? '127.0.0.1';
    return new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: this.options.port, localAddress: source });
      const life: SilentLife = { source, openedAt: 0 };
      socket.on('data', () => {}); // read and ignore the server's identification string
      socket.on('error', () => {});
      socket.once('connect', () => {
        life.openedAt = performance.now();
        this.lives.push(life);
        this.sockets.add(socket);
      });
      socket.once('close', () => {
        if (this.sockets.delete(socket)) life.closedAt = performance.now();
        else this.connectFailures++;
        resolve();
      });
    });
  }
}

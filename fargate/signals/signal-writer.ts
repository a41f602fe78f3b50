/**
 * Writes tunnels' signals (tunnel-signals.ts) to their SIGNALS items, coalesced per tunnel: the
 * first change of a quiet tunnel is written at once, changes that follow within `minIntervalMs`
 * go out together in one write at the end of it, so a tunnel costs at most one write per interval
 * however many connections come and go, and any change is stored within one interval (well inside
 * a heartbeat). Never blocks the SSH protocol path.
 *
 * Like the state writer, an outage of the table delays signals, never loses them: a write is
 * retried with capped, jittered backoff until the table answers, carrying the newer values that
 * arrived meanwhile (only the newest value of each signal waits, so memory stays at one pending
 * entry per tunnel, and at most `maxPendingTunnels` of those).
 */
import { randomInt } from 'node:crypto';
import { StorageUnavailableError } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import type { GatewayStore } from '../../shared/store/gateway-store';
import type { TunnelSignals } from '../../shared/tunnel-signals';

export interface SignalWriterSettings {
  /** At most one write per tunnel per this long (HEARTBEAT_INTERVAL_MS at most, so a change shows within one). */
  minIntervalMs: number;
  /** Tunnels whose signals may wait unwritten at once (an outage); beyond, new ones are dropped and counted. */
  maxPendingTunnels: number;
}

/** Other failures (a bug, an item the table refuses) are retried a few times, then given up. */
const MAX_ATTEMPTS_ON_ERROR = 6;
const MAX_BACKOFF_MS = 5_000;
/** A drop of signals is logged at most this often. */
const DROP_LOG_INTERVAL_MS = 60_000;

export class SignalWriter {
  /** The newest value of each signal not yet handed to a write, per tunnel. */
  private readonly waiting = new Map<string, TunnelSignals>();
  /** Tunnels whose writing loop runs: it writes, then holds the tunnel for the interval. */
  private readonly loops = new Map<string, Promise<void>>();
  /** Wakes the loops out of their interval (a flush at shutdown). */
  private readonly wakers = new Set<() => void>();
  private isFlushing = false;
  private dropped = 0;
  private lastDropLogAt = 0;

  constructor(
    private readonly store: Pick<GatewayStore, 'writeSignals'>,
    private readonly logger: Logger,
    private readonly settings: SignalWriterSettings,
  ) {}

  /** Records new values of some of a tunnel's signals; written within the interval. */
  set(tunnelId: string, signals: TunnelSignals): void {
    const older = this.waiting.get(tunnelId);
    if (!older && this.waiting.size >= this.settings.maxPendingTunnels) {
      this.drop(tunnelId);
      return;
    }
    this.waiting.set(tunnelId, { ...older, ...signals });
    if (this.loops.has(tunnelId)) return;
    const loop = this.drain(tunnelId).finally(() => this.loops.delete(tunnelId));
    this.loops.set(tunnelId, loop);
  }

  /** Tunnels with signals not yet written. */
  get backlog(): number {
    return this.waiting.size;
  }

  /** Writes what waits without waiting out intervals; resolves when done, or at `deadline` (epoch ms). */
  async flush(deadline: number): Promise<void> {
    this.isFlushing = true;
    for (const wake of this.wakers) wake();
    while (this.loops.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(this.loops.values()),
        new Promise((resolve) => {
          timer = setTimeout(resolve, left);
        }),
      ]);
      clearTimeout(timer);
    }
  }

  private async drain(tunnelId: string): Promise<void> {
    for (let signals = this.take(tunnelId); signals; signals = this.take(tunnelId)) {
      await this.writeUntilDone(tunnelId, signals);
      // The interval: what changes meanwhile waits and goes out in the next single write.
      await this.pause(this.settings.minIntervalMs, true);
    }
  }

  private take(tunnelId: string): TunnelSignals | undefined {
    const signals = this.waiting.get(tunnelId);
    this.waiting.delete(tunnelId);
    return signals;
  }

  private async writeUntilDone(tunnelId: string, first: TunnelSignals): Promise<void> {
    let signals = first;
    let errors = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const written = await this.store.writeSignals(tunnelId, signals);
        this.logger.debug(written ? 'tunnel signals written' : 'tunnel signals dropped: tunnel deleted', {
          tunnelId,
          signals: Object.keys(signals),
          attempts: attempt,
        });
        return;
      } catch (err) {
        const isOutage = err instanceof StorageUnavailableError;
        if (!isOutage && ++errors >= MAX_ATTEMPTS_ON_ERROR) {
          this.logger.error('tunnel signals write failed; giving up', { tunnelId, err });
          return;
        }
        if (attempt === 1 || attempt % 10 === 0) {
          this.logger.warn('tunnel signals write failed; retrying', { tunnelId, attempt, err });
        }
        const cap = Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(attempt, 10));
        await this.pause(randomInt(Math.floor(cap / 2), cap + 1), false);
        // Newer values came meanwhile: write them instead, with the older ones they leave alone.
        const newer = this.take(tunnelId);
        if (newer) signals = { ...signals, ...newer };
      }
    }
  }

  /** Sleeps `ms`; an interval ends early once a flush began (a shutdown writes what waits at once). */
  private pause(ms: number, isInterval: boolean): Promise<void> {
    if (isInterval && this.isFlushing) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      if (isInterval) this.wakers.add(wake);
    });
  }

  private drop(tunnelId: string): void {
    this.dropped++;
    const now = Date.now();
    if (now - this.lastDropLogAt < DROP_LOG_INTERVAL_MS) return;
    this.lastDropLogAt = now;
    this.logger.warn('tunnel signals dropped: too many tunnels waiting to be written', {
      tunnelId,
      waiting: this.waiting.size,
      droppedSinceStart: this.dropped,
    });
  }
}

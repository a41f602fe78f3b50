/**
 * Connections and bytes through the tunnels this gateway serves, per tunnel and in total. Nothing is
 * counted per byte: the sockets count their own (`bytesRead`, `bytesWritten`), and this meter reads
 * them when asked (a scrape, a heartbeat) and when a connection closes.
 *
 * A tunnel's counts run from when this gateway began serving it (its listener opened) until it
 * stops (the listener closes): the heartbeat carries them to the API (`status.traffic`), so they
 * cost no write of their own, whatever the traffic.
 */
import type { Socket } from 'node:net';
import { type ByteTotals, zeroBytes } from '../shared/metrics/operator-metrics';
import type { TunnelType } from '../shared/tunnel';

/** One tunnel's figures: `[sinceMs, connections, open, bytesToService, bytesFromService]`. */
export type TunnelTraffic = [number, number, number, number, number];

interface TunnelCounts {
  type: TunnelType;
  since: number;
  connections: number;
  /** Bytes of closed connections, and of open ones up to their `seen` marks. */
  toService: number;
  fromService: number;
  open: Map<Socket, { read: number; written: number }>;
}

export interface TrafficObserver {
  connectionOpened(type: TunnelType, seconds: number): void;
  connectionFailed(type: TunnelType): void;
}

export class TrafficMeter {
  private readonly tunnels = new Map<string, TunnelCounts>();
  /** Bytes of every tunnel ever served here (only grows): the metrics' counter. */
  private readonly totals: ByteTotals = zeroBytes();

  constructor(
    private readonly now: () => Date,
    private readonly observer?: TrafficObserver,
  ) {}

  /** The tunnel is served here from now on (its listener opened). */
  serve(tunnelId: string, type: TunnelType): void {
    if (this.tunnels.has(tunnelId)) return;
    this.tunnels.set(tunnelId, {
      type,
      since: this.now().getTime(),
      connections: 0,
      toService: 0,
      fromService: 0,
      open: new Map(),
    });
  }

  /** No longer served here (its listener closed; its sockets are gone): its counts end. */
  stop(tunnelId: string): void {
    const counts = this.tunnels.get(tunnelId);
    if (!counts) return;
    for (const socket of counts.open.keys()) this.settle(counts, socket);
    this.tunnels.delete(tunnelId);
  }

  /** A platform connection's channel opened after `seconds`; its bytes count from now until it closes. */
  opened(tunnelId: string, socket: Socket, seconds: number): void {
    const counts = this.tunnels.get(tunnelId);
    if (!counts) return;
    counts.connections++;
    counts.open.set(socket, { read: 0, written: 0 });
    socket.once('close', () => {
      this.settle(counts, socket);
      counts.open.delete(socket);
    });
    this.observer?.connectionOpened(counts.type, seconds);
  }

  failed(type: TunnelType): void {
    this.observer?.connectionFailed(type);
  }

  /** Connections open through tunnels now, by type. */
  openConnections(): Record<TunnelType, number> {
    const open = { reverse: 0, standard: 0 };
    for (const counts of this.tunnels.values()) open[counts.type] += counts.open.size;
    return open;
  }

  /** Bytes through every tunnel served here so far, by type and direction. */
  byteTotals(): ByteTotals {
    for (const counts of this.tunnels.values())
      for (const socket of counts.open.keys()) this.settle(counts, socket);
    return { reverse: { ...this.totals.reverse }, standard: { ...this.totals.standard } };
  }

  /**
   * The figures of the `limit` busiest tunnels that carried any connection (idle tunnels cost
   * nothing in the heartbeat): what the heartbeat carries.
   */
  perTunnel(limit: number): Record<string, TunnelTraffic> {
    const rows: [string, TunnelTraffic][] = [];
    for (const [id, counts] of this.tunnels) {
      if (counts.connections === 0) continue;
      for (const socket of counts.open.keys()) this.settle(counts, socket);
      rows.push([
        id,
        [counts.since, counts.connections, counts.open.size, counts.toService, counts.fromService],
      ]);
    }
    rows.sort((a, b) => b[1][3] + b[1][4] - (a[1][3] + a[1][4]));
    return Object.fromEntries(rows.slice(0, limit));
  }

  /** Folds what `socket` moved since its last mark into its tunnel's and the totals. */
  private settle(counts: TunnelCounts, socket: Socket): void {
    const seen = counts.open.get(socket);
    if (!seen) return;
    // From the platform's socket: what it read went to the service, what it wrote came back.
    const read = socket.bytesRead - seen.read;
    const written = socket.bytesWritten - seen.written;
    if (read <= 0 && written <= 0) return;
    seen.read = socket.bytesRead;
    seen.written = socket.bytesWritten;
    counts.toService += read;
    counts.fromService += written;
    this.totals[counts.type].toService += read;
    this.totals[counts.type].fromService += written;
  }
}

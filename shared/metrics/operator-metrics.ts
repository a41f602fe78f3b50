/**
 * The operator's metrics (docs/metrics.md lists each): one prom-client registry per process, which
 * `GET /metrics` serves as Prometheus text and emf.ts turns into CloudWatch metrics in AWS.
 *
 * Events are counted where they happen (a login, a refused login, a connection opened, a sweep);
 * what is a level rather than an event (sessions, open connections, tunnels served, bytes so far)
 * is read from the gateways that registered as sources when a scrape asks, so the data path pays
 * nothing per byte.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { z } from 'zod';
import type { SecretReadCounter, SecretReadResult } from '../secrets/secret-cache';
import { TUNNEL_TYPES, type TunnelType } from '../tunnel';

export const METRIC_PREFIX = 'tunnelkeeper_';

/** Why a login to the reverse-tunnel endpoint was refused: a fixed set, so labels stay bounded. */
export const LOGIN_REFUSAL_REASONS = [
  'method_not_allowed',
  'not_a_tunnel',
  'no_such_tunnel',
  'tunnel_disabled',
  'wrong_key',
  'bad_signature',
  'client_left',
  'too_many_sessions',
  'too_many_attempts',
  'storage_unavailable',
  'internal_error',
] as const;
export type LoginRefusalReason = (typeof LOGIN_REFUSAL_REASONS)[number];

const TUNNEL_STATES = ['pending', 'up', 'down', 'disabled'] as const;
export type DeliveryResult = 'delivered' | 'retrying' | 'failed';

/** Bytes through tunnels so far, by type; totals only grow while the source lives. */
export type ByteTotals = Record<TunnelType, { toService: number; fromService: number }>;

/** What a gateway reports when a scrape asks (fargate/gateway.ts). */
export interface GatewayFigures {
  tunnels: Record<TunnelType, number>;
  customerSessions: number;
  /** Connections open through tunnels, by type. */
  channelsOpen: Record<TunnelType, number>;
  bytes: ByteTotals;
}

const count = z.number().int().min(0);

/** What one sweep reports (lambda/sweeper/sweep.ts); checked where it crosses a thread. */
export const SweepFiguresSchema = z.object({
  durationMs: z.number().min(0),
  /**
   * Every tunnel, by state and type: what a full pass saw, or what the kept counts say (absent when
   * they could not be read: the gauge keeps what it showed).
   */
  tunnels: z.array(z.object({ state: z.enum(TUNNEL_STATES), type: z.enum(TUNNEL_TYPES), count })).optional(),
  deliveries: z.object({ delivered: count, retrying: count, failed: count }),
  transitions: count,
  errors: count,
});
export type SweepFigures = z.infer<typeof SweepFiguresSchema>;

/** Connection set-up through a tunnel takes milliseconds on a LAN, seconds over a slow bastion. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const SWEEP_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class OperatorMetrics implements SecretReadCounter {
  readonly registry = new Registry();
  private readonly sources = new Set<() => GatewayFigures>();
  /** What each source's byte totals were when last folded into the counter. */
  private readonly bytesSeen = new Map<() => GatewayFigures, ByteTotals>();

  private readonly loginsAccepted: Counter;
  private readonly loginsRefused: Counter<'reason'>;
  private readonly connectionsOpened: Counter<'type'>;
  private readonly connectionsFailed: Counter<'type'>;
  private readonly connectionLatency: Histogram<'type'>;
  private readonly bytes: Counter<'type' | 'direction'>;
  private readonly tunnels: Gauge<'state' | 'type'>;
  private readonly sweepDuration: Histogram;
  private readonly sweepTransitions: Counter;
  private readonly sweepErrors: Counter;
  private readonly deliveries: Counter<'result'>;
  private readonly secretReads: Counter<'result'>;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const name = (n: string) => `${METRIC_PREFIX}${n}`;
    const sources = () => [...this.sources].map((read) => read());
    this.loginsAccepted = new Counter({
      name: name('logins_accepted_total'),
      help: 'Logins to the reverse-tunnel SSH endpoint that succeeded.',
      registers,
    });
    this.loginsRefused = new Counter({
      name: name('logins_refused_total'),
      help: 'Login attempts to the reverse-tunnel SSH endpoint refused, by reason.',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of LOGIN_REFUSAL_REASONS) this.loginsRefused.inc({ reason }, 0);
    this.connectionsOpened = new Counter({
      name: name('tunnel_connections_total'),
      help: "Platform connections through tunnels that reached the tunnel's far side, by tunnel type.",
      labelNames: ['type'],
      registers,
    });
    this.connectionsFailed = new Counter({
      name: name('tunnel_connections_failed_total'),
      help: 'Platform connections through tunnels that could not be opened (no channel, limit reached), by tunnel type.',
      labelNames: ['type'],
      registers,
    });
    this.connectionLatency = new Histogram({
      name: name('tunnel_connection_open_seconds'),
      help: 'From accepting a platform connection to its channel through the tunnel being open, by tunnel type.',
      labelNames: ['type'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    for (const type of TUNNEL_TYPES) {
      this.connectionsOpened.inc({ type }, 0);
      this.connectionsFailed.inc({ type }, 0);
      this.connectionLatency.zero({ type });
    }
    const metrics = this;
    this.bytes = new Counter({
      name: name('tunnel_bytes_total'),
      help: 'Bytes through tunnels, by tunnel type and direction (to_service: from the platform to the service).',
      labelNames: ['type', 'direction'],
      registers,
      collect() {
        for (const read of metrics.sources) metrics.foldBytes(read, read().bytes);
      },
    });
    for (const type of TUNNEL_TYPES) {
      this.bytes.inc({ type, direction: 'to_service' }, 0);
      this.bytes.inc({ type, direction: 'from_service' }, 0);
    }
    new Gauge({
      name: name('gateway_tunnels'),
      help: 'Tunnels this gateway serves now (reverse: a customer session holds the forward; standard: in its pool), by type.',
      labelNames: ['type'],
      registers,
      collect() {
        const figures = sources();
        for (const type of TUNNEL_TYPES) this.set({ type }, sum(figures.map((f) => f.tunnels[type])));
      },
    });
    new Gauge({
      name: name('customer_sessions'),
      help: 'Logged-in customer SSH sessions on the reverse-tunnel endpoint.',
      registers,
      collect() {
        this.set(sum(sources().map((f) => f.customerSessions)));
      },
    });
    new Gauge({
      name: name('channels_open'),
      help: 'Platform connections open through tunnels now (each one SSH channel), by tunnel type.',
      labelNames: ['type'],
      registers,
      collect() {
        const figures = sources();
        for (const type of TUNNEL_TYPES) this.set({ type }, sum(figures.map((f) => f.channelsOpen[type])));
      },
    });
    this.tunnels = new Gauge({
      name: name('tunnels'),
      help: 'Tunnels by state and type, as the latest sweep saw them.',
      labelNames: ['state', 'type'],
      registers,
    });
    this.sweepDuration = new Histogram({
      name: name('sweep_duration_seconds'),
      help: 'How long a sweeper pass took: a full pass (every tunnel), a periodic one (what is due) or one over written tunnels.',
      buckets: SWEEP_BUCKETS,
      registers,
    });
    this.sweepTransitions = new Counter({
      name: name('sweep_transitions_total'),
      help: 'Status transitions the sweeps recorded.',
      registers,
    });
    this.sweepErrors = new Counter({
      name: name('sweep_errors_total'),
      help: 'Tunnels, shards or marks a sweep could not handle (each also logged).',
      registers,
    });
    this.deliveries = new Counter({
      name: name('alert_deliveries_total'),
      help: 'Alert delivery attempts to the sinks, by result (retrying: failed, tried again later; failed: given up).',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['delivered', 'retrying', 'failed'] as const) this.deliveries.inc({ result }, 0);
    this.secretReads = new Counter({
      name: name('secret_reads_total'),
      help: "Reads of standard tunnels' credentials by the gateway, by result (hit: from its cache; miss: from the secret store).",
      labelNames: ['result'],
      registers,
    });
    for (const result of ['hit', 'miss'] as const) this.secretReads.inc({ result }, 0);
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The Prometheus text exposition of every metric. prom-client writes a NaN (the event loop lag
   * gauges before their first sample) as `Nan`; the format's spelling is `NaN`.
   */
  async text(): Promise<string> {
    return (await this.registry.metrics()).replace(/ Nan$/gm, ' NaN');
  }

  loginAccepted(): void {
    this.loginsAccepted.inc();
  }

  loginRefused(reason: LoginRefusalReason): void {
    this.loginsRefused.inc({ reason });
  }

  connectionOpened(type: TunnelType, seconds: number): void {
    this.connectionsOpened.inc({ type });
    this.connectionLatency.observe({ type }, seconds);
  }

  connectionFailed(type: TunnelType): void {
    this.connectionsFailed.inc({ type });
  }

  sweepFinished(figures: SweepFigures): void {
    this.sweepDuration.observe(figures.durationMs / 1000);
    this.sweepTransitions.inc(figures.transitions);
    this.sweepErrors.inc(figures.errors);
    for (const [result, count] of Object.entries(figures.deliveries)) this.deliveries.inc({ result }, count);
    if (figures.tunnels) {
      // A complete picture each sweep: states no tunnel is in any more read 0, not their old count.
      for (const state of TUNNEL_STATES)
        for (const type of TUNNEL_TYPES) this.tunnels.set({ state, type }, 0);
      for (const { state, type, count } of figures.tunnels) this.tunnels.inc({ state, type }, count);
    }
  }

  secretRead(result: SecretReadResult): void {
    this.secretReads.inc({ result });
  }

  /** Reads `source` at each scrape from now on; the returned function stops that (bytes so far stay counted). */
  addSource(source: () => GatewayFigures): () => void {
    this.sources.add(source);
    this.bytesSeen.set(source, zeroBytes());
    return () => {
      if (!this.sources.delete(source)) return;
      this.foldBytes(source, source().bytes);
      this.bytesSeen.delete(source);
    };
  }

  private foldBytes(source: () => GatewayFigures, totals: ByteTotals): void {
    const seen = this.bytesSeen.get(source) ?? zeroBytes();
    for (const type of TUNNEL_TYPES) {
      const toService = totals[type].toService - seen[type].toService;
      const fromService = totals[type].fromService - seen[type].fromService;
      if (toService > 0) this.bytes.inc({ type, direction: 'to_service' }, toService);
      if (fromService > 0) this.bytes.inc({ type, direction: 'from_service' }, fromService);
    }
    this.bytesSeen.set(source, {
      reverse: { ...totals.reverse },
      standard: { ...totals.standard },
    });
  }
}

export function zeroBytes(): ByteTotals {
  return { reverse: { toService: 0, fromService: 0 }, standard: { toService: 0, fromService: 0 } };
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

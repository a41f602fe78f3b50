/**
 * What this gateway tells the API about its tunnels besides their state (tunnel-signals.ts): the
 * latest refused login, logins taking over from each other, and whether real connections through
 * a tunnel reach its service. It remembers the last value it recorded per tunnel and hands the
 * signal writer only changes, so a tunnel's steady traffic, a customer's autossh retrying the same
 * wrong key, or a service down for hours cost a write when something changes, not per connection.
 * Memory is bounded per kind of signal (least recently touched tunnels are forgotten first).
 */
import {
  CONTENTION_QUIET_MS,
  CONTENTION_REFRESH_MS,
  CONTENTION_TAKEOVERS,
  CONTENTION_WINDOW_MS,
  LOGIN_REFUSAL_REFRESH_MS,
  type LoginRefusalKind,
  MAX_CONTENTION_SOURCES,
  MAX_SIGNAL_TEXT,
  type TunnelSignals,
} from '../../shared/tunnel-signals';
import { BoundedMap } from './bounded-map';

/** A refused login, as the endpoint decided it. */
export interface LoginRefusal {
  kind: LoginRefusalKind;
  reason: string;
  source: string;
  method: string;
  keyFingerprint?: string;
}

/** How one real connection through the tunnel to its service went. */
export type ServiceOutcome = { reachable: true } | { reachable: false; message: string };

export interface GatewaySignalsDeps {
  /** Where changed signals go (the signal writer). */
  write: (tunnelId: string, signals: TunnelSignals) => void;
  now: () => Date;
  /** Tunnels remembered per kind of signal. */
  maxTunnels: number;
}

interface RefusalMemory {
  key: string;
  since: number;
  recordedAt: number;
}

interface ContentionMemory {
  /** Takeovers within the window, oldest first (at most a few more than the threshold). */
  times: number[];
  /** Sources seen taking over, with when last, most recent last. */
  sources: Map<string, number>;
  /** The contention recorded, while one goes on. */
  recorded?: { since: number; lastAt: number; sources: string[] };
}

interface ServiceMemory {
  reachable: boolean;
  message?: string;
  since: number;
}

export class GatewaySignals {
  private readonly refusals: BoundedMap<string, RefusalMemory>;
  private readonly contentions: BoundedMap<string, ContentionMemory>;
  private readonly services: BoundedMap<string, ServiceMemory>;

  constructor(private readonly deps: GatewaySignalsDeps) {
    this.refusals = new BoundedMap(deps.maxTunnels);
    this.contentions = new BoundedMap(deps.maxTunnels);
    this.services = new BoundedMap(deps.maxTunnels);
  }

  /** A login as this (existing) tunnel was refused. The same refusal again is recorded now and then only. */
  loginRefused(tunnelId: string, refusal: LoginRefusal): void {
    const now = this.deps.now().getTime();
    const source = clip(refusal.source);
    const key = [refusal.kind, refusal.reason, refusal.keyFingerprint ?? '', source].join('\n');
    const last = this.refusals.get(tunnelId);
    if (last?.key === key && now - last.recordedAt < LOGIN_REFUSAL_REFRESH_MS) return;
    const since = last?.key === key ? last.since : now;
    this.refusals.set(tunnelId, { key, since, recordedAt: now });
    const loginRefused: NonNullable<TunnelSignals['loginRefused']> = {
      since: iso(since),
      at: iso(now),
      kind: refusal.kind,
      reason: clip(refusal.reason),
      source,
      method: clip(refusal.method),
    };
    if (refusal.keyFingerprint) loginRefused.keyFingerprint = clip(refusal.keyFingerprint);
    this.deps.write(tunnelId, { loginRefused });
  }

  /**
   * A login of the tunnel succeeded. Nothing to write: its connection's STATE item, newer than
   * the refusal, clears the warning; the next refusal is recorded afresh.
   */
  loginSucceeded(tunnelId: string): void {
    this.refusals.delete(tunnelId);
  }

  /** A newer login of the tunnel from `nextSource` took it over from the one from `previousSource`. */
  takeover(tunnelId: string, previousSource: string, nextSource: string): void {
    const now = this.deps.now().getTime();
    const memory = this.contentions.get(tunnelId) ?? { times: [], sources: new Map<string, number>() };
    memory.times = [...memory.times.filter((t) => now - t < CONTENTION_WINDOW_MS), now].slice(
      -MAX_TAKEOVERS_KEPT,
    );
    for (const source of [previousSource, nextSource].map(clip)) {
      memory.sources.delete(source);
      memory.sources.set(source, now);
    }
    for (const [source, seen] of memory.sources) {
      if (now - seen >= CONTENTION_WINDOW_MS || memory.sources.size > MAX_CONTENTION_SOURCES)
        memory.sources.delete(source);
    }
    this.contentions.set(tunnelId, memory);
    if (memory.times.length < CONTENTION_TAKEOVERS) return;
    const sources = [...memory.sources.keys()].reverse();
    const recorded = memory.recorded;
    const isNew = !recorded || now - recorded.lastAt >= CONTENTION_QUIET_MS;
    const hasNewSource = recorded !== undefined && sources.some((s) => !recorded.sources.includes(s));
    if (!isNew && !hasNewSource && now - recorded.lastAt < CONTENTION_REFRESH_MS) return;
    memory.recorded = { since: isNew ? now : recorded.since, lastAt: now, sources };
    this.deps.write(tunnelId, {
      contention: {
        since: iso(memory.recorded.since),
        lastAt: iso(now),
        takeovers: memory.times.length,
        sources,
      },
    });
  }

  /**
   * A real connection through the tunnel reached its service, or did not: the platform's
   * connections, and the one a standard tunnel makes when its session comes up (never a periodic probe).
   */
  serviceOutcome(tunnelId: string, outcome: ServiceOutcome): void {
    const now = this.deps.now().getTime();
    const message = outcome.reachable ? undefined : clip(outcome.message);
    const last = this.services.get(tunnelId);
    if (last && last.reachable === outcome.reachable && last.message === message) return;
    const since = last?.reachable === outcome.reachable ? last.since : now;
    const memory: ServiceMemory = { reachable: outcome.reachable, since };
    if (message !== undefined) memory.message = message;
    this.services.set(tunnelId, memory);
    const service: NonNullable<TunnelSignals['service']> = {
      reachable: outcome.reachable,
      since: iso(since),
    };
    if (message !== undefined) service.message = message;
    this.deps.write(tunnelId, { service });
  }
}

/** Takeover times kept per tunnel: enough to count a fight, bounded however fast it goes. */
const MAX_TAKEOVERS_KEPT = 64;

const iso = (ms: number) => new Date(ms).toISOString();
const clip = (text: string) => text.slice(0, MAX_SIGNAL_TEXT);

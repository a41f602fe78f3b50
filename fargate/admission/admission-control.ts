/**
 * Who may hold an unauthenticated connection to the SSH endpoint, after sshd's MaxStartups
 * (random early drop between `start` and `full`, sshd.c) and PerSourceMaxStartups /
 * PerSourcePenalties (srclimit.c), with one change of aim: a customer from a clean address must
 * always get in. So a source that is clean (no penalty, few handshakes in progress) is never
 * dropped at random, and when a budget is full the newcomer takes the place of the connection
 * least likely to be a customer (one that has not even sent its identification string, from the
 * source holding the most) instead of being refused. Pure logic: the clock and the dice are
 * parameters, and closing a socket is the caller's `evict` callback.
 */

import { sourceKeyOf } from './source-key';
import { type Offence, type PenaltySettings, SourcePenalties } from './source-penalties';

/** sshd's `start:rate:full`: from `start` unauthenticated connections, drop `rate`% rising to 100% at `full`. */
export interface MaxStartups {
  start: number;
  rate: number;
  full: number;
}

export interface AdmissionSettings {
  maxStartups: MaxStartups;
  /** Unauthenticated connections one clean source may hold at once. */
  perSourceMaxStartups: number;
  /** The least a penalized source's budget shrinks to (never 0: a customer may share its address). */
  penalizedSourceMinStartups: number;
  /** From accept to the client's identification string (`SSH-2.0-...`). */
  bannerTimeoutMs: number;
  penalties: PenaltySettings;
}

/** Why a connection was refused, evicted or dropped: fixed texts, for logs and counters. */
export const DropReason = {
  silent: 'no identification string before the banner deadline',
  handshakeTimeout: 'handshake and authentication timed out',
  perSourceLimit: 'too many unauthenticated connections from this source',
  full: 'too many unauthenticated connections',
  earlyDrop: 'random early drop: unauthenticated connections piling up',
  evictedForSameSource: 'evicted for a newer connection from the same source',
  evictedForCleanSource: 'evicted to make room for a connection from a clean source',
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

export type Admission =
  | { ok: true; connection: UnauthenticatedConnection }
  | { ok: false; reason: DropReason; fields: Record<string, unknown> };

/** Called when admission control closes a connection to make room; the caller destroys its socket. */
export type Evict = (reason: DropReason, fields: Record<string, unknown>) => void;

export interface AdmissionStats {
  unauthenticated: number;
  /** Sources holding unauthenticated connections right now. */
  sources: number;
  /** Sources with an active penalty among those remembered. */
  penalizedSources: number;
  admitted: number;
  /** Refused, evicted and timed-out connections since start, by reason. */
  dropped: Record<string, number>;
}

/** sshd's should_drop_connection(): the chance (0..1) of dropping at `unauthenticated` connections. */
export function earlyDropProbability(unauthenticated: number, { start, rate, full }: MaxStartups): number {
  if (unauthenticated < start) return 0;
  if (unauthenticated >= full || rate >= 100) return 1;
  return (rate + ((100 - rate) * (unauthenticated - start)) / (full - start)) / 100;
}

/**
 * Eviction tiers within a source, most expendable first: failed a login already; has not sent its
 * identification string (oldest first: a customer's client sends it, or answers ours, within a
 * round trip, so a young silent connection may well be a customer); sent its string but is still
 * not logged in past the banner deadline.
 */
const Tier = { failedAuth: 0, silent: 1, stuck: 2 } as const;
type Tier = (typeof Tier)[keyof typeof Tier];

/** One source's unauthenticated connections, each map in arrival order. */
class SourceSlots {
  readonly failed = new Map<number, UnauthenticatedConnection>();
  readonly silent = new Map<number, UnauthenticatedConnection>();
  readonly talking = new Map<number, UnauthenticatedConnection>();

  get held(): number {
    return this.failed.size + this.silent.size + this.talking.size;
  }

  delete(id: number): void {
    this.failed.delete(id);
    this.silent.delete(id);
    this.talking.delete(id);
  }

  /** The most expendable connection, or undefined when every one looks like a login in progress. */
  candidate(
    now: number,
    stuckAfterMs: number,
  ): { tier: Tier; connection: UnauthenticatedConnection } | undefined {
    const failed = this.failed.values().next().value;
    if (failed) return { tier: Tier.failedAuth, connection: failed };
    const silent = this.silent.values().next().value;
    if (silent) return { tier: Tier.silent, connection: silent };
    const oldest = this.talking.values().next().value;
    if (oldest && now - oldest.acceptedAt > stuckAfterMs) return { tier: Tier.stuck, connection: oldest };
    return undefined;
  }
}

export class AdmissionControl {
  private readonly penalties: SourcePenalties;
  private readonly bySource = new Map<string, SourceSlots>();
  private unauthenticated = 0;
  private admitted = 0;
  private nextId = 1;
  private readonly dropped = new Map<DropReason, number>();

  constructor(
    private readonly settings: AdmissionSettings,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.penalties = new SourcePenalties(settings.penalties, now);
  }

  get unauthenticatedCount(): number {
    return this.unauthenticated;
  }

  stats(): AdmissionStats {
    let penalizedSources = 0;
    for (const source of this.bySource.keys()) if (this.penalties.isPenalized(source)) penalizedSources++;
    return {
      unauthenticated: this.unauthenticated,
      sources: this.bySource.size,
      penalizedSources,
      admitted: this.admitted,
      dropped: Object.fromEntries(this.dropped),
    };
  }

  /** Unauthenticated connections `address`'s source may hold now: shrinks while it is penalized. */
  budgetOf(source: string): number {
    const { perSourceMaxStartups, penalizedSourceMinStartups, penalties } = this.settings;
    const outstanding = this.penalties.outstandingMs(source);
    if (outstanding === 0) return perSourceMaxStartups;
    const left = Math.floor(perSourceMaxStartups * (1 - outstanding / penalties.maxMs));
    return Math.max(Math.min(penalizedSourceMinStartups, perSourceMaxStartups), left);
  }

  /**
   * Admits a new TCP connection from `address`, evicting others if it must, or says why not.
   * An admitted connection must report its events to the returned object until it is released.
   */
  admit(address: string, evict: Evict): Admission {
    const source = sourceKeyOf(address);
    const now = this.now();
    const slots = this.bySource.get(source);
    const held = slots?.held ?? 0;
    const budget = this.budgetOf(source);
    const penalized = this.penalties.isPenalized(source);
    const fields = { held, budget, penalized };

    // A source that is not clean meets sshd's random early drop first: when connections pile up,
    // most of a flood is turned away here, at the cost of an accept and a close.
    const clean = !penalized && held < Math.max(1, Math.floor(this.settings.perSourceMaxStartups / 4));
    const { maxStartups } = this.settings;
    if (!clean) {
      const probability = earlyDropProbability(this.unauthenticated, maxStartups);
      if (probability > 0 && this.random() < probability) {
        const reason = this.unauthenticated >= maxStartups.full ? DropReason.full : DropReason.earlyDrop;
        return this.refuse(reason, {
          ...fields,
          unauthenticated: this.unauthenticated,
          probability: Math.round(probability * 100) / 100,
        });
      }
    }

    if (slots && held >= budget) {
      // Its own most expendable one makes room, so a customer behind the same address as an
      // attacker still gets in. One for one, never more: a mass eviction down to a shrunk budget
      // would sweep away the customer's own connection before its identification string arrived.
      // The excess over a shrunk budget drains through the deadlines instead.
      const victim = slots.candidate(now, this.settings.bannerTimeoutMs);
      if (!victim) return this.refuse(DropReason.perSourceLimit, fields);
      this.evictOne(victim.connection, DropReason.evictedForSameSource, { ...fields, tier: victim.tier });
      return this.add(source, address, evict, now);
    }

    if (this.unauthenticated >= maxStartups.full) {
      // Only a clean source gets here (the others were dropped above): it takes someone's place.
      const victim = this.globalCandidate(now);
      if (!victim) return this.refuse(DropReason.full, { ...fields, unauthenticated: this.unauthenticated });
      this.evictOne(victim.connection, DropReason.evictedForCleanSource, {
        tier: victim.tier,
        for: source,
        unauthenticated: this.unauthenticated,
      });
    }
    return this.add(source, address, evict, now);
  }

  /** Counts a connection closed for `reason` outside admission (a deadline). */
  countDrop(reason: DropReason): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
  }

  /** @internal the connection's events, through UnauthenticatedConnection. */
  penalize(source: string, offence: Offence): { outstandingMs: number; active: boolean } {
    return this.penalties.penalize(source, offence);
  }

  /** @internal */
  authFailure(source: string): number {
    return this.penalties.authFailure(source);
  }

  /** @internal */
  moveToTalking(connection: UnauthenticatedConnection): void {
    const slots = this.bySource.get(connection.source);
    if (!slots?.silent.delete(connection.id)) return;
    slots.talking.set(connection.id, connection);
  }

  /** @internal */
  moveToFailed(connection: UnauthenticatedConnection): void {
    const slots = this.bySource.get(connection.source);
    if (!slots || slots.failed.has(connection.id)) return;
    slots.delete(connection.id);
    slots.failed.set(connection.id, connection);
  }

  /** @internal */
  remove(connection: UnauthenticatedConnection): void {
    this.unauthenticated--;
    const slots = this.bySource.get(connection.source);
    if (!slots) return;
    slots.delete(connection.id);
    if (slots.held === 0) this.bySource.delete(connection.source);
  }

  private add(source: string, address: string, evict: Evict, now: number): Admission {
    const connection = new UnauthenticatedConnection(this, this.nextId++, source, address, now, evict);
    let slots = this.bySource.get(source);
    if (!slots) {
      slots = new SourceSlots();
      this.bySource.set(source, slots);
    }
    slots.silent.set(connection.id, connection);
    this.unauthenticated++;
    this.admitted++;
    return { ok: true, connection };
  }

  private refuse(reason: DropReason, fields: Record<string, unknown>): Admission {
    this.countDrop(reason);
    return { ok: false, reason, fields };
  }

  private evictOne(
    connection: UnauthenticatedConnection,
    reason: DropReason,
    fields: Record<string, unknown>,
  ) {
    connection.done();
    this.countDrop(reason);
    connection.evict(reason, fields);
  }

  /**
   * Across sources: from penalized sources first, then from the source holding the most (an
   * attacker's flood, not the customer with one connection), its most expendable one.
   */
  private globalCandidate(now: number): { tier: Tier; connection: UnauthenticatedConnection } | undefined {
    let best:
      | { tier: Tier; connection: UnauthenticatedConnection; penalized: boolean; held: number }
      | undefined;
    for (const [source, slots] of this.bySource) {
      const found = slots.candidate(now, this.settings.bannerTimeoutMs);
      if (!found) continue;
      const candidate = { ...found, penalized: this.penalties.isPenalized(source), held: slots.held };
      if (!best || isMoreExpendable(candidate, best)) best = candidate;
    }
    return best;
  }
}

function isMoreExpendable(
  a: { tier: Tier; connection: UnauthenticatedConnection; penalized: boolean; held: number },
  b: { tier: Tier; connection: UnauthenticatedConnection; penalized: boolean; held: number },
): boolean {
  if (a.penalized !== b.penalized) return a.penalized;
  if (a.held !== b.held) return a.held > b.held;
  if (a.tier !== b.tier) return a.tier < b.tier;
  return a.connection.acceptedAt < b.connection.acceptedAt;
}

/**
 * One admitted connection until it logs in or closes, with a method per event that matters to
 * admission; after `done()` (logged in, closed, evicted) every event is ignored.
 */
export class UnauthenticatedConnection {
  private bannered = false;
  private released = false;

  constructor(
    private readonly control: AdmissionControl,
    readonly id: number,
    /** The source key (an IPv6 address counts as its /64). */
    readonly source: string,
    readonly address: string,
    readonly acceptedAt: number,
    readonly evict: Evict,
  ) {}

  get hasSentBanner(): boolean {
    return this.bannered;
  }

  get isDone(): boolean {
    return this.released;
  }

  /** The client's identification string arrived. */
  bannerReceived(): void {
    if (this.released || this.bannered) return;
    this.bannered = true;
    this.control.moveToTalking(this);
  }

  /** A login attempt failed; returns how long to delay the answer. */
  loginFailed(): number {
    if (this.released) return 0;
    this.control.moveToFailed(this);
    return this.control.authFailure(this.source);
  }

  /** A deadline closed it: counted as a drop, and the source penalized for it. */
  timedOut(reason: DropReason, offence: Offence): { outstandingMs: number; active: boolean } {
    this.done();
    this.control.countDrop(reason);
    return this.control.penalize(this.source, offence);
  }

  /** Logged in or closed: it no longer counts. */
  done(): void {
    if (this.released) return;
    this.released = true;
    this.control.remove(this);
  }
}

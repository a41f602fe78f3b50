/**
 * The status sweep: every tunnel, shard by shard in parallel, through the status machine; changes
 * persisted with their events; alerts delivered through the sinks, each exactly once.
 *
 * Exactly once, across restarts and racing sweepers, is an outbox in the tunnel's STATUS item:
 * 1. A transition and the alerts it causes are one conditional write (TransactWriteItems on the
 *    STATUS version that was read, plus the events). Two sweepers computing the same transition
 *    race on that version: one writes, the other's write is refused and it moves on. A restarted
 *    sweeper reads the incident (and whether `tunnel.down` was queued) back from the item, so it
 *    never queues an alert twice. Alert ids are deterministic per incident edge.
 * 2. Delivery claims an alert with a conditional update on its revision (and a lease time, so a
 *    crashed holder's claim lapses), sends it to each sink that lacks it, then settles: sinks that
 *    took it are marked delivered, failed ones get a backoff time, and the entry leaves the outbox
 *    once every sink is done. Only the claim holder may settle.
 * 3. Pending sinks are retried on later sweeps, with exponential backoff and jitter, until the
 *    alert's retry window ends; then they are marked failed and logged. Each sink progresses on its
 *    own (a dead webhook never re-sends to SNS), and an incident's `tunnel.up` waits, per sink,
 *    until its `tunnel.down` is delivered or given up, so receivers see them in order.
 * What no outbox can remove is a crash after a receiver accepted an alert and before the settle:
 * after the claim lapses that alert is sent again with the same id (`X-Tunnelkeeper-Alert-Id`,
 * FIFO deduplication id on SNS), which receivers use to drop it.
 *
 * A workspace's alert channels are sinks too, named `channel:<id>`, each with its own progress,
 * backoff and order like the operator's. They are read only when an alert is queued or a channel
 * owes one (never in steady state), and they change while incidents are open:
 * - a channel hears of an incident only if it existed when its `tunnel.down` was queued: a channel
 *   created mid-incident gets nothing of it (no `tunnel.up` without the `tunnel.down` before it),
 *   and the next incident in full;
 * - a channel deleted mid-incident gets nothing more: what it was still owed is given up at its
 *   next attempt (logged, not an error), and its `tunnel.up` is never queued for it.
 */
import { randomBytes } from 'node:crypto';
import type { AlertSink } from '../../shared/alerts/alert-sink';
import {
  CHANNEL_SINK_PREFIX,
  type ChannelSink,
  type ChannelSinkSource,
} from '../../shared/alerts/channel-sink';
import { AlertDeliveryError } from '../../shared/errors';
import type { WorkerHeartbeat } from '../../shared/gateway-items';
import { workerLiveness } from '../../shared/liveness';
import type { Logger } from '../../shared/logger';
import type { SweepFigures } from '../../shared/metrics/operator-metrics';
import { evaluateStatus, type PlannedAlert, type StatusSettings } from '../../shared/status';
import type { OutboxAlert, SinkDelivery, StatusRecord } from '../../shared/status-items';
import { statusWakeAt } from '../../shared/status-wake';
import type { UnreadableItem } from '../../shared/store/read-items';
import {
  ownersToCheck,
  type StatusSources,
  type StatusStore,
  type TunnelCount,
  withHeartbeats,
} from '../../shared/store/status-store';
import { SHARD_COUNT } from '../../shared/store/table';
import { type CountMove, movesOf } from '../../shared/store/tunnel-counts';
import type { TunnelRecord } from '../../shared/tunnel';

export interface DeliverySettings {
  /** How long an alert is retried before the sinks that still lack it give up. */
  retryWindowMs: number;
  /** Backoff between delivery attempts on later sweeps (each attempt retries within itself too). */
  retryBaseMs: number;
  retryMaxMs: number;
  /** How long a claim protects a delivery in progress: longer than every sink's bounded send. */
  claimMs: number;
}

/**
 * Six hours of retries reaches a receiver through any ordinary outage or deploy; backoff doubles
 * from 30 s to at most 10 min (about 40 attempts in the window); a claim outlasts the slowest
 * sinks in a row (SNS ≤ 20 s, webhook ≤ 17 s) several times over.
 */
export const DELIVERY_DEFAULTS: DeliverySettings = {
  retryWindowMs: 6 * 60 * 60 * 1000,
  retryBaseMs: 30_000,
  retryMaxMs: 10 * 60 * 1000,
  claimMs: 2 * 60 * 1000,
};

export interface SweepDeps {
  store: StatusStore;
  /** The operator's sinks: every alert of every tunnel. */
  sinks: AlertSink[];
  /** The customers' alert channels; absent: the operator's sinks only. */
  channels?: ChannelSinkSource;
  logger: Logger;
  settings: StatusSettings;
  /**
   * How often sweeps run (`SWEEP_INTERVAL_MS`): a gap of two without a complete sweep means the
   * sweepers saw nothing meanwhile (an outage of the table, most likely, which also kept workers
   * from beating), so heartbeats get time to come back before a stale one counts.
   */
  intervalMs?: number;
  delivery?: Partial<DeliverySettings>;
  now?: () => Date;
  /** Names this sweeper in alert claims; random by default. */
  sweeperId?: string;
  random?: () => number;
  /** Aborted when the process stops: no new deliveries start, running ones give up. */
  signal?: AbortSignal;
  /** Tunnels handled at once within a shard page. */
  concurrency?: number;
  /**
   * Told what each sweep saw and did (the operator's metrics: tunnels by state and type, duration,
   * transitions, alert deliveries by result from this report's counts, errors).
   */
  metrics?: { sweepFinished(figures: SweepFigures): void };
}

export interface SweepReport {
  tunnels: number;
  transitions: number;
  /** Changes another sweeper (or a delete) made first; retried by the next sweep. */
  conflicts: number;
  alertsQueued: number;
  delivered: number;
  /** Deliveries that failed and will be retried on a later sweep. */
  retrying: number;
  /** Deliveries given up: not retryable, or the retry window ended. */
  failed: number;
  errors: number;
  ms: number;
}

/**
 * One sweep over every tunnel (the full pass: at start-up and as a backstop now and then). Failures
 * of one tunnel or shard are logged and counted, not thrown.
 */
export async function sweep(deps: SweepDeps): Promise<SweepReport> {
  return new Sweep(deps).runFull();
}

/**
 * The periodic pass, whose cost follows what happens rather than the fleet's size: the tunnels of
 * workers that went silent (found through their holds) and the tunnels whose status timers are due
 * (status-wake.ts). Every other change is a write, which `sweepTunnels` handles as it comes.
 */
export async function sweepDue(deps: SweepDeps): Promise<SweepReport> {
  return new Sweep(deps).runDue();
}

/** The tunnels whose STATE or META item was just written (the table's stream says which). */
export async function sweepTunnels(deps: SweepDeps, tunnelIds: string[]): Promise<SweepReport> {
  return new Sweep(deps).runTunnels(tunnelIds);
}

export interface SweeperLoop {
  /** Tunnels whose STATE or META item was written (the table's stream): evaluated at once. */
  changed(tunnelIds: string[]): void;
  /** Writes may have gone unseen (the stream was lost for a while): the next pass reads every tunnel. */
  gap(): void;
  /** Stops the timer, aborts deliveries in progress and waits for the running pass to end. */
  stop(): Promise<void>;
}

/** Written tunnels gathered this long before their pass: a burst of writes costs one batch read. */
const CHANGE_BATCH_MS = 50;
/** How often a full pass reads every tunnel anyway, in case a change went unseen. */
export const DEFAULT_FULL_INTERVAL_MS = 6 * 60 * 60 * 1000;

/**
 * Runs a full pass at once, then a periodic pass (`sweepDue`) `intervalMs` after each one ends, a
 * full pass instead every `fullIntervalMs` or after a gap, and a pass over written tunnels as the
 * stream tells of them. Passes never overlap within a process; across processes the conditional
 * writes keep them apart.
 */
export function startSweeperLoop(
  options: SweepDeps & { intervalMs: number; fullIntervalMs?: number },
): SweeperLoop {
  const { intervalMs, fullIntervalMs = DEFAULT_FULL_INTERVAL_MS } = options;
  const controller = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
  const deps: SweepDeps = { ...options, sweeperId: options.sweeperId ?? newSweeperId(), signal };
  const written = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let changeTimer: NodeJS.Timeout | undefined;
  let passes: Promise<void> = Promise.resolve();
  let needsFull = true;
  let lastFullAt = 0;
  let stopped = false;

  const enqueue = (pass: () => Promise<unknown>): Promise<void> => {
    passes = passes.then(pass).then(
      () => undefined,
      (err: unknown) => deps.logger.error('sweep failed', { err }),
    );
    return passes;
  };
  const tick = () => {
    enqueue(() => {
      if (needsFull || Date.now() - lastFullAt >= fullIntervalMs) {
        needsFull = false;
        lastFullAt = Date.now();
        return sweep(deps);
      }
      return sweepDue(deps);
    }).finally(() => {
      if (!stopped) timer = setTimeout(tick, intervalMs);
    });
  };
  const passWritten = () => {
    changeTimer = undefined;
    const ids = [...written];
    written.clear();
    if (ids.length > 0 && !stopped) enqueue(() => sweepTunnels(deps, ids));
  };
  tick();
  return {
    changed(tunnelIds) {
      if (stopped) return;
      for (const id of tunnelIds) written.add(id);
      changeTimer ??= setTimeout(passWritten, CHANGE_BATCH_MS);
    },
    gap() {
      needsFull = true;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(changeTimer);
      controller.abort();
      await passes;
    },
  };
}

export function newSweeperId(): string {
  return `sweeper-${randomBytes(6).toString('hex')}`;
}

type SweepTunnelFigure = NonNullable<SweepFigures['tunnels']>[number];

const DEFAULT_CONCURRENCY = 8;
/** Tunnels read at once by id: one batch read of META, then of STATE and STATUS. */
const ID_PAGE_SIZE = 100;
const DEFAULT_INTERVAL_MS = 60_000;

class Sweep {
  private readonly report: SweepReport = {
    tunnels: 0,
    transitions: 0,
    conflicts: 0,
    alertsQueued: 0,
    delivered: 0,
    retrying: 0,
    failed: 0,
    errors: 0,
    ms: 0,
  };
  /** Shards that could not be read to the end: the sweep saw less than everything. */
  private shardErrors = 0;
  /** Since when the sweepers have seen the table without a gap (see `SweepMark`). */
  private observingSince: number | undefined;
  /** Tunnels seen, by `<state>/<type>`. */
  private readonly seen = new Map<string, SweepTunnelFigure>();
  /** How the changes this pass recorded move the kept counts: applied in one write as it ends. */
  private readonly moves: CountMove[] = [];
  /**
   * Owner heartbeats, read about once per sweep whatever the number of tunnels a worker holds:
   * the newest read of each worker's, and when that read began (see `heartbeats`).
   */
  private readonly beats = new Map<string, { began: number; beat: Promise<WorkerHeartbeat | undefined> }>();
  /** Each workspace's channels, read at most once per sweep and only when an alert needs them. */
  private readonly channels = new Map<string, Promise<Map<string, ChannelSink>>>();
  private readonly sinks: Map<string, AlertSink>;
  private readonly delivery: DeliverySettings;
  private readonly now: () => Date;
  private readonly random: () => number;
  private readonly sweeperId: string;

  constructor(private readonly deps: SweepDeps) {
    this.sinks = new Map(deps.sinks.map((s) => [s.name, s]));
    this.delivery = { ...DELIVERY_DEFAULTS, ...deps.delivery };
    this.now = deps.now ?? (() => new Date());
    this.random = deps.random ?? Math.random;
    this.sweeperId = deps.sweeperId ?? newSweeperId();
  }

  async runFull(): Promise<SweepReport> {
    const started = performance.now();
    this.observingSince = await this.readMark();
    await Promise.all(Array.from({ length: SHARD_COUNT }, (_, shard) => this.sweepShard(shard)));
    if (this.shardErrors === 0) {
      await this.writeMark(this.now().getTime());
      await this.writeCounts();
      return this.finish('full', started, [...this.seen.values()]);
    }
    // It saw less than everything: what it changed moves the kept counts, which it reports.
    return this.finish('full', started, await this.readCounts());
  }

  async runDue(): Promise<SweepReport> {
    const started = performance.now();
    this.observingSince = await this.readMark();
    const now = this.now();
    const [silent, due] = await Promise.all([
      this.silentWorkers(now),
      Promise.all(Array.from({ length: SHARD_COUNT }, (_, shard) => this.deps.store.listDue(shard, now))),
    ]);
    const held = await Promise.all(silent.map((w) => this.deps.store.holdsOf(w)));
    const errorsBefore = this.report.errors;
    await this.sweepIds([...new Set([...held.flat(), ...due.flat()])]);
    // Their tunnels are recorded as lost: the holds have told what they had to.
    if (this.report.errors === errorsBefore) {
      await Promise.all(silent.map((w, i) => this.deps.store.releaseHolds(w, held[i] ?? [])));
      await this.writeMark(this.now().getTime());
    }
    return this.finish('due', started, await this.readCounts());
  }

  async runTunnels(tunnelIds: string[]): Promise<SweepReport> {
    const started = performance.now();
    this.observingSince = await this.readMark();
    await this.sweepIds([...new Set(tunnelIds)]);
    return this.finish('tunnels', started, await this.readCounts());
  }

  /**
   * The kept counts follow this pass's changes (best effort: the next full pass sets them right),
   * then say how many tunnels are in each state as every process sees them; none when unread.
   */
  private async readCounts(): Promise<TunnelCount[] | undefined> {
    try {
      await this.deps.store.moveTunnelCounts(this.moves);
    } catch (err) {
      this.deps.logger.warn('tunnel counts not moved', { moves: this.moves.length, err });
    }
    try {
      const counts = await this.deps.store.getTunnelCounts();
      return counts.length > 0 ? counts : undefined;
    } catch (err) {
      this.deps.logger.warn('tunnel counts not read', { err });
      return undefined;
    }
  }

  /** A full pass saw every tunnel: its counts replace the kept ones. */
  private async writeCounts(): Promise<void> {
    try {
      await this.deps.store.putTunnelCounts([...this.seen.values()]);
    } catch (err) {
      this.deps.logger.warn('tunnel counts not written', { err });
    }
  }

  private finish(
    pass: 'full' | 'due' | 'tunnels',
    started: number,
    tunnels: TunnelCount[] | undefined,
  ): SweepReport {
    this.report.ms = Math.round(performance.now() - started);
    const { ms, ...counts } = this.report;
    const level =
      this.report.errors > 0 ? 'warn' : counts.transitions > 0 || counts.delivered > 0 ? 'info' : 'debug';
    this.deps.logger[level]('sweep finished', { sweeperId: this.sweeperId, pass, ...counts, ms });
    this.deps.metrics?.sweepFinished({
      durationMs: ms,
      ...(tunnels ? { tunnels } : {}),
      deliveries: { delivered: counts.delivered, retrying: counts.retrying, failed: counts.failed },
      transitions: counts.transitions,
      errors: counts.errors,
    });
    return this.report;
  }

  /** Workers whose heartbeat says they are gone (stopped, or silent past the bound) and that still hold tunnels. */
  private async silentWorkers(now: Date): Promise<string[]> {
    const view = this.observingSince === undefined ? { now } : { now, observingSince: this.observingSince };
    const began = this.now().getTime();
    const workers = await this.deps.store.listWorkers();
    for (const beat of workers) this.beats.set(beat.workerId, { began, beat: Promise.resolve(beat) });
    return workers
      .filter((beat) => !workerLiveness(beat, view, this.deps.settings).isAlive)
      .map((beat) => beat.workerId);
  }

  /** Tunnels by id: read in pages like a shard's, then each through the status machine. */
  private async sweepIds(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += ID_PAGE_SIZE) {
      const page = ids.slice(i, i + ID_PAGE_SIZE);
      try {
        const { found, unreadable } = await this.deps.store.getTunnels(page);
        for (const item of unreadable) this.skipUnreadable(item);
        // Deleted meanwhile: nothing to record (the delete took the STATUS item with it).
        await this.sweepPage([...found.values()]);
      } catch (err) {
        this.report.errors++;
        this.deps.logger.error('sweep of tunnels failed', { tunnels: page.length, err });
      }
    }
  }

  /**
   * Since when the sweepers have seen the table without a gap: the mark's, unless no complete sweep
   * ended within two intervals and a heartbeat (a heartbeat missed in a shorter gap is the worker's
   * doing), or none ever did; then from now.
   */
  private async readMark(): Promise<number> {
    const mark = await this.deps.store.getSweepMark();
    // Sight is back when the read answers (it may have waited out a table starting up).
    const now = this.now().getTime();
    const gapMs = 2 * (this.deps.intervalMs ?? DEFAULT_INTERVAL_MS) + this.deps.settings.heartbeatIntervalMs;
    if (mark && now - mark.lastCompleteAt <= gapMs) return mark.observingSince;
    if (mark) {
      this.deps.logger.warn(
        'sweeps resumed after a gap; stale heartbeats wait for the workers to beat again',
        {
          lastCompleteAt: new Date(mark.lastCompleteAt).toISOString(),
        },
      );
    }
    return now;
  }

  private async writeMark(endedAt: number): Promise<void> {
    try {
      await this.deps.store.putSweepMark({
        lastCompleteAt: endedAt,
        observingSince: this.observingSince ?? endedAt,
      });
    } catch (err) {
      this.report.errors++;
      this.deps.logger.error('sweep mark not written', { err });
    }
  }

  private async sweepShard(shard: number): Promise<void> {
    try {
      let cursor: Record<string, unknown> | undefined;
      do {
        const page = await this.deps.store.listShard(shard, cursor);
        cursor = page.cursor;
        for (const item of page.unreadable) this.skipUnreadable(item);
        await this.sweepPage(page.items);
      } while (cursor);
    } catch (err) {
      this.report.errors++;
      this.shardErrors++;
      this.deps.logger.error('sweep of a shard failed', { shard, err });
    }
  }

  private async sweepPage(tunnels: TunnelRecord[]): Promise<void> {
    if (tunnels.length === 0) return;
    const items = await this.deps.store.getStatusItems(tunnels.map((t) => t.id));
    // The page is judged as of its reads, with heartbeats read since: its writes (and other pages')
    // may take seconds on a busy table, and a heartbeat read before them would age into a worker
    // that looks gone.
    const seenAt = this.now();
    const owners = [...items.values()].flatMap(ownersToCheck);
    const beats = await this.heartbeats(owners, seenAt.getTime());
    await forEachLimit(tunnels, this.deps.concurrency ?? DEFAULT_CONCURRENCY, async (tunnel) => {
      const { unreadable, ...sources } = items.get(tunnel.id) ?? {};
      if (unreadable) {
        for (const item of unreadable) this.skipUnreadable(item);
        return;
      }
      await this.sweepTunnel(tunnel, withHeartbeats(sources, beats), seenAt);
    });
  }

  /** One unreadable item leaves its tunnel out of this sweep; every other tunnel goes on. */
  private skipUnreadable(item: UnreadableItem): void {
    this.report.errors++;
    this.deps.logger.error('tunnel skipped: unreadable item', {
      tunnelId: item.id,
      item: item.item,
      reason: item.reason,
    });
  }

  /**
   * The heartbeats of `owners`, from a read that began at `readFrom` or later: the shards' pages
   * that read at about the same time share one read; a page read after it (a long sweep) reads again.
   */
  private async heartbeats(owners: string[], readFrom: number): Promise<Map<string, WorkerHeartbeat>> {
    const unique = [...new Set(owners)];
    const missing = unique.filter((id) => (this.beats.get(id)?.began ?? Number.NEGATIVE_INFINITY) < readFrom);
    if (missing.length > 0) {
      const began = this.now().getTime();
      const batch = this.deps.store.getHeartbeats(missing);
      for (const id of missing) this.beats.set(id, { began, beat: batch.then((found) => found.get(id)) });
    }
    const found = new Map<string, WorkerHeartbeat>();
    for (const id of unique) {
      const beat = await this.beats.get(id)?.beat;
      if (beat) found.set(id, beat);
    }
    return found;
  }

  private async sweepTunnel(tunnel: TunnelRecord, sources: StatusSources, seenAt: Date): Promise<void> {
    this.report.tunnels++;
    try {
      const now = this.now();
      const { state, heartbeat, status: previous, connectorStates, heartbeats, stateRev } = sources;
      const evaluation = evaluateStatus({
        tunnel,
        state,
        heartbeat,
        ...(connectorStates ? { connectorStates } : {}),
        ...(heartbeats ? { heartbeats } : {}),
        previous,
        now: seenAt,
        observingSince: this.observingSince,
        settings: this.deps.settings,
      });
      this.count(evaluation.status.state, tunnel.type);
      let outbox = previous ? Object.values(previous.alerts) : [];
      let record: StatusRecord | undefined = previous;
      if (evaluation.next) {
        const queued = await Promise.all(
          evaluation.alerts.map((alert) => this.outboxEntry(tunnel, alert, now)),
        );
        const written = await this.deps.store.recordChange({
          tunnelId: tunnel.id,
          expectedVersion: previous?.version ?? 0,
          readState: state
            ? state.rev === undefined
              ? {}
              : { rev: state.rev }
            : stateRev === undefined
              ? undefined
              : { rev: stateRev },
          next: evaluation.next,
          uptime: evaluation.ledger,
          events: evaluation.transitions,
          alerts: queued,
          now,
        });
        if (!written) {
          // Another sweeper recorded this change (and queued its alerts) first, which it delivers;
          // or the STATE item changed since it was read: the next sweep computes from the new one.
          this.report.conflicts++;
          this.deps.logger.debug('status changed meanwhile; not recorded', { tunnelId: tunnel.id });
          return;
        }
        record = evaluation.next;
        this.moves.push(...movesOf(tunnel.type, previous?.state, record.state));
        for (const t of evaluation.transitions) {
          this.deps.logger.info('tunnel status changed', {
            tunnelId: tunnel.id,
            workspaceId: tunnel.workspaceId,
            from: t.from,
            to: t.to,
            at: t.at,
            code: t.error?.code,
          });
        }
        this.report.transitions += evaluation.transitions.length;
        this.report.alertsQueued += queued.length;
        outbox = [...outbox, ...queued];
      }
      if (outbox.length > 0) outbox = await this.deliver(tunnel, outbox);
      await this.keepWake(tunnel, record, outbox, previous?.wakeAt);
    } catch (err) {
      this.report.errors++;
      this.deps.logger.error('sweep of a tunnel failed', { tunnelId: tunnel.id, err });
    }
  }

  /**
   * The STATUS item is listed in the wake index at the time its status may next change by itself
   * (status-wake.ts), and only then: written when that time changed, conditional on the one read,
   * so a sweeper working from an older read never removes a newer one's timer.
   */
  private async keepWake(
    tunnel: TunnelRecord,
    record: StatusRecord | undefined,
    outbox: OutboxAlert[],
    stored: number | undefined,
  ): Promise<void> {
    if (!record) return;
    const wakeAt = statusWakeAt({ tunnel, record, outbox, settings: this.deps.settings });
    if (wakeAt === stored) return;
    await this.deps.store.setWake(tunnel.id, wakeAt, stored);
  }

  private count(state: SweepTunnelFigure['state'], type: TunnelRecord['type']): void {
    const key = `${state}/${type}`;
    const entry = this.seen.get(key) ?? { state, type, count: 0 };
    entry.count++;
    this.seen.set(key, entry);
  }

  private async outboxEntry(tunnel: TunnelRecord, alert: PlannedAlert, now: Date): Promise<OutboxAlert> {
    const sinks: Record<string, SinkDelivery> = {};
    for (const name of this.sinks.keys()) sinks[name] = { state: 'pending', attempts: 0 };
    for (const channel of (await this.channelsOf(tunnel.workspaceId)).values()) {
      if (hearsOf(channel, tunnel.id, alert)) sinks[channel.name] = { state: 'pending', attempts: 0 };
    }
    return {
      id: alert.id,
      body: alert.body,
      createdAt: now.toISOString(),
      deadline: now.getTime() + this.delivery.retryWindowMs,
      rev: 0,
      sinks,
    };
  }

  private channelsOf(workspaceId: string): Promise<Map<string, ChannelSink>> {
    const source = this.deps.channels;
    if (!source) return Promise.resolve(new Map());
    let found = this.channels.get(workspaceId);
    if (!found) {
      found = source.forWorkspace(workspaceId).then((sinks) => new Map(sinks.map((s) => [s.name, s])));
      // A failed read fails this tunnel's sweep (retried next sweep), not the other tunnels' reads.
      found.catch(() => this.channels.delete(workspaceId));
      this.channels.set(workspaceId, found);
    }
    return found;
  }

  /** Delivers a tunnel's due alerts oldest first; a sink still owed an older alert waits for it. */
  private async deliver(tunnel: TunnelRecord, outbox: OutboxAlert[]): Promise<OutboxAlert[]> {
    const tunnelId = tunnel.id;
    const owed = new Set<string>();
    // The outbox as it stands after this round (what the wake is computed from).
    const after = new Map(outbox.map((entry) => [entry.id, entry]));
    for (const entry of [...outbox].sort(oldestFirst)) {
      if (this.deps.signal?.aborted) break;
      const now = this.now().getTime();
      const pending = Object.keys(entry.sinks).filter((name) => entry.sinks[name]?.state === 'pending');
      const expired = now > entry.deadline;
      const due = pending.filter(
        (name) => expired || (!owed.has(name) && (entry.sinks[name]?.nextAttemptAt ?? 0) <= now),
      );
      for (const name of pending) owed.add(name);
      const heldByOther = entry.claim !== undefined && entry.claim.until >= now;
      if ((pending.length > 0 && due.length === 0) || heldByOther) continue;

      const claim = { by: this.sweeperId, until: now + this.delivery.claimMs };
      if (!(await this.deps.store.claimAlert(tunnelId, entry, claim, new Date(now)))) {
        // Another sweeper has it: due again when its claim would lapse, at the latest.
        after.set(entry.id, { ...entry, claim });
        continue;
      }
      const sinks: Record<string, SinkDelivery> = { ...entry.sinks };
      for (const name of due) {
        const current = sinks[name] ?? { state: 'pending', attempts: 0 };
        sinks[name] = expired
          ? this.giveUp(tunnelId, entry, name, current)
          : await this.attempt(tunnel, entry, name, current);
      }
      const done = Object.values(sinks).every((d) => d.state !== 'pending');
      const next = done ? undefined : settled(entry, sinks);
      if (!(await this.deps.store.settleAlert(tunnelId, entry.id, this.sweeperId, next))) {
        // Our claim ran out and another sweeper took the alert over: it may send it again.
        this.deps.logger.warn('alert claim lost during delivery', { tunnelId, alertId: entry.id });
        after.set(entry.id, { ...entry, claim });
        continue;
      }
      if (next) after.set(entry.id, next);
      else after.delete(entry.id);
      for (const name of pending) if (sinks[name]?.state !== 'pending') owed.delete(name);
    }
    return [...after.values()];
  }

  private async attempt(
    tunnel: TunnelRecord,
    entry: OutboxAlert,
    name: string,
    current: SinkDelivery,
  ): Promise<SinkDelivery> {
    const tunnelId = tunnel.id;
    const isChannel = name.startsWith(CHANNEL_SINK_PREFIX);
    const sink = isChannel ? (await this.channelsOf(tunnel.workspaceId)).get(name) : this.sinks.get(name);
    const fields = { tunnelId, alertId: entry.id, sink: name };
    if (!sink && isChannel) {
      // The customer deleted the channel: nothing more goes there, and that is no failure of ours.
      this.deps.logger.info('alert not sent: alert channel deleted', fields);
      return { state: 'failed', attempts: current.attempts, lastError: 'alert channel deleted' };
    }
    if (!sink) {
      this.report.failed++;
      this.deps.logger.error('alert delivery gave up', { ...fields, reason: 'sink no longer configured' });
      return { state: 'failed', attempts: current.attempts, lastError: 'sink no longer configured' };
    }
    try {
      await sink.send({ id: entry.id, body: entry.body, signal: this.deps.signal });
      this.report.delivered++;
      this.deps.logger.debug('alert delivered', fields);
      return { state: 'delivered', attempts: current.attempts + 1, deliveredAt: this.now().toISOString() };
    } catch (err) {
      // Stopping is not the receiver's fault: leave the sink as it was for the next process.
      if (this.deps.signal?.aborted) return current;
      const attempts = current.attempts + 1;
      const lastError = err instanceof Error ? err.message : String(err);
      const retryable = !(err instanceof AlertDeliveryError) || err.retryable;
      if (retryable) {
        // The last attempt falls on the deadline at the latest; a sweep after it gives up.
        const nextAttemptAt = Math.min(this.now().getTime() + this.retryDelay(attempts), entry.deadline);
        this.report.retrying++;
        this.deps.logger.warn('alert delivery failed; will retry', { ...fields, attempts, err });
        return { state: 'pending', attempts, nextAttemptAt, lastError };
      }
      this.report.failed++;
      this.deps.logger.error('alert delivery gave up', { ...fields, attempts, err });
      return { state: 'failed', attempts, lastError };
    }
  }

  private giveUp(tunnelId: string, entry: OutboxAlert, name: string, current: SinkDelivery): SinkDelivery {
    this.report.failed++;
    const lastError = current.lastError ?? 'not attempted';
    this.deps.logger.error('alert delivery gave up', {
      tunnelId,
      alertId: entry.id,
      sink: name,
      attempts: current.attempts,
      reason: 'retry window ended',
      lastError,
    });
    return { state: 'failed', attempts: current.attempts, lastError };
  }

  /** Exponential from `retryBaseMs`, capped, with half of it jittered so sweepers spread out. */
  private retryDelay(attempts: number): number {
    const step = Math.min(this.delivery.retryMaxMs, this.delivery.retryBaseMs * 2 ** (attempts - 1));
    return Math.round(step / 2 + (this.random() * step) / 2);
  }
}

/** The entry after a delivery round: new sink states, a new revision, the claim released. */
function settled(entry: OutboxAlert, sinks: Record<string, SinkDelivery>): OutboxAlert {
  return {
    id: entry.id,
    body: entry.body,
    createdAt: entry.createdAt,
    deadline: entry.deadline,
    rev: entry.rev + 1,
    sinks,
  };
}

/**
 * Whether a channel gets this alert: it covers the tunnel, and for a `tunnel.up`, it existed when
 * the incident's `tunnel.down` was queued (so it was given that one).
 */
function hearsOf(channel: ChannelSink, tunnelId: string, alert: PlannedAlert): boolean {
  const { tunnelIds, createdAt } = channel.channel;
  if (tunnelIds && !tunnelIds.includes(tunnelId)) return false;
  if (alert.body.type === 'tunnel.up' && alert.downQueuedAt !== undefined) {
    return Date.parse(createdAt) <= Date.parse(alert.downQueuedAt);
  }
  return true;
}

function oldestFirst(a: OutboxAlert, b: OutboxAlert): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  // Queued together (a missed recovery and a new down cannot be, but be total): down before up.
  return a.body.type === b.body.type ? 0 : a.body.type === 'tunnel.down' ? -1 : 1;
}

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let item = items[next++]; item !== undefined; item = items[next++]) await fn(item);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

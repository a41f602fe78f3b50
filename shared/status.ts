/**
 * The status machine: one pure function from (tunnel config, STATE item, owner heartbeat, previous
 * STATUS record, now, settings) to the status the API shows, the record to persist, the transitions
 * for the history and the alerts to send. The API calls it on every read (ignoring what it would
 * persist); the sweeper calls it every run and persists the result. No I/O, time comes in as data.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Env } from './config';
import { type ConnectHostBlock, connectHostFor } from './connect-hosts';
import { type ConnectorStates, hasConnectors, representativeState } from './connectors';
import type { TunnelStateItem, WorkerHeartbeat } from './gateway-items';
import { type LivenessSettings, type LivenessView, workerGoneAfterMs, workerLiveness } from './liveness';
import type {
  Alert,
  AlertType,
  DownCause,
  Status,
  StatusError,
  TunnelEvent,
  TunnelStateName,
} from './schemas';
import { connectionLost, customerNotConnected, hostPort } from './status-errors';
import type { StatusRecord } from './status-items';
import type { UnreadableItem } from './store/read-items';
import { newLedger, recordTransitions, type UptimeLedger } from './uptime';

export interface StatusView {
  status: Status;
  /** Where workloads reach the service: only while the tunnel is up. */
  connect: { host: string; port: number } | null;
  /** A reverse tunnel with connectors: each one judged (connectors.ts). */
  connectors?: ConnectorStates;
}

export interface StatusSettings extends LivenessSettings {
  /** `DOWN_GRACE_MS`: how long a tunnel stays down before `tunnel.down` is sent. */
  downGraceMs: number;
  /** `TUNNEL_BIND_HOST`: `connect.host` unless the worker names its own listener address. */
  bindHost: string;
  /** `CONNECT_HOSTS`: when set, `connect.host` by port, whichever worker carries the tunnel. */
  connectHosts?: readonly ConnectHostBlock[];
  /**
   * `RECOVERY_SETTLE_MS`: an announced incident ends (`tunnel.up`) only once the tunnel has been up
   * this long; a down before that continues it, unannounced. 0 (or absent): at the first up.
   */
  recoverySettleMs?: number;
}

/** The status settings of a runtime's configuration. */
export function statusSettingsFrom(
  env: Pick<
    Env,
    | 'HEARTBEAT_INTERVAL_MS'
    | 'SSH_KEEPALIVE_INTERVAL_MS'
    | 'DOWN_GRACE_MS'
    | 'TUNNEL_BIND_HOST'
    | 'RECOVERY_SETTLE_MS'
    | 'CONNECT_HOSTS'
  >,
): StatusSettings {
  const settings: StatusSettings = {
    heartbeatIntervalMs: env.HEARTBEAT_INTERVAL_MS,
    keepaliveIntervalMs: env.SSH_KEEPALIVE_INTERVAL_MS,
    downGraceMs: env.DOWN_GRACE_MS,
    bindHost: env.TUNNEL_BIND_HOST,
    recoverySettleMs: env.RECOVERY_SETTLE_MS,
  };
  if (env.CONNECT_HOSTS) settings.connectHosts = env.CONNECT_HOSTS;
  return settings;
}

/** The parts of a tunnel's configuration the machine needs (a `TunnelRecord` fits). */
export interface StatusTunnel {
  id: string;
  name: string;
  workspaceId: string;
  type: 'standard' | 'reverse';
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
  port: number;
  ssh?: { host: string; port: number };
  /** Reverse tunnels with connectors (connectors.ts; a `TunnelRecord` fits). */
  publicKey?: string;
  publicKeyFingerprint?: string;
  expectedConnectors?: number | undefined;
  connectors?:
    | { id: string; publicKey: string; publicKeyFingerprint: string; createdAt: string }[]
    | undefined;
  isPrimaryConnectorRemoved?: boolean | undefined;
  /** Maintenance: no `tunnel.down` is sent before `mutedUntil` (one after it if still down). */
  alerts?: { mutedUntil?: string };
}

export interface StatusInput {
  tunnel: StatusTunnel;
  /** `TUNNEL#<id>/STATE`, absent until a worker first connects the tunnel. */
  state?: TunnelStateItem;
  /** Heartbeat of `state.owner`, absent when it has none (never beat, or expired by TTL). */
  heartbeat?: WorkerHeartbeat;
  /** Reverse tunnels with connectors: the further connectors' states, by connector id. */
  connectorStates?: Readonly<Record<string, TunnelStateItem>>;
  /** Reverse tunnels with connectors: the heartbeats of every connector's owner. */
  heartbeats?: ReadonlyMap<string, WorkerHeartbeat>;
  /** The record the sweeper last persisted (with its uptime ledger), absent before its first write. */
  previous?: StatusRecord & { uptime?: UptimeLedger };
  now: Date;
  /** Since when the reader has seen the table without a gap (`LivenessView.observingSince`). */
  observingSince?: number;
  settings: StatusSettings;
}

/**
 * An alert the caller must deliver; `id` (`<tunnel id>:<type>@<incident since>`) is stable for the
 * incident so retries and races agree, and unique across tunnels.
 */
export interface PlannedAlert {
  id: string;
  body: Alert;
  /** On a `tunnel.up`: when its incident's `tunnel.down` was queued (absent in older records). */
  downQueuedAt?: string;
}

export interface StatusEvaluation extends StatusView {
  /** The record to persist; absent when it equals the previous one (steady state writes nothing). */
  next?: StatusRecord;
  /** History entries, oldest first: usually none or one, two when a run missed a short excursion. */
  transitions: TunnelEvent[];
  alerts: PlannedAlert[];
  /**
   * The uptime ledger (uptime.ts) with these transitions, covering up to `status.since`: stored
   * with `next` (it changes only with a transition, so only when `next` is written anyway).
   */
  ledger: UptimeLedger;
}

export function evaluateStatus(given: StatusInput): StatusEvaluation {
  // Several connectors: the machine judges the one state that stands for them all.
  const connectors = connectorStatesOf(given);
  const input = connectors ? withRepresentative(given, connectors) : given;
  const { tunnel, previous, now, settings } = input;
  const observed = observe(input);
  const before: StatusRecord = previous ? recordOf(previous) : { state: 'pending', since: tunnel.createdAt };
  const status: Status = { ...observed.status };

  const sameState = before.state === status.state;
  // The same state as before, but through another connection: the opposite state came and went
  // between two runs (a reconnect, or a connection that came up and was lost again).
  const excursion = sameState && missedExcursion(before.source, observed.source, input.state?.continues);

  const transitions: TunnelEvent[] = [];
  if (sameState && !excursion) {
    // Still the same state: it began when it first did, whatever the newest item says.
    status.since = before.since;
    if (status.error?.code === 'worker_lost' && before.error?.code !== undefined) {
      // The lost worker's heartbeat may expire meanwhile: keep what was said while it was there.
      copyOptional(status, before, 'lastSeenAt');
      if (before.error.code === 'worker_lost') status.error = { ...before.error };
    }
  } else {
    // Never before the previous state began, so history stays ordered whatever the clocks said;
    // and never before a disabled tunnel was enabled again, so the grace starts afresh.
    status.since = maxIso(status.since, before.since);
    if (before.state === 'disabled') status.since = maxIso(status.since, tunnel.updatedAt);
    if (excursion) {
      const missed: TunnelEvent =
        status.state === 'up'
          ? missedDown(before, input.state, status.since)
          : { at: status.since, from: before.state, to: 'up' };
      transitions.push(missed);
      transitions.push(event(missed.to, missed.at, status, observed.cause));
    } else {
      transitions.push(event(before.state, before.since, status, observed.cause));
    }
  }
  if (status.state === 'down' && status.error?.code === 'worker_lost' && tunnel.type === 'reverse') {
    status.error = afterReconnectWindow(status, now, settings) ?? status.error;
  }

  const alerts: PlannedAlert[] = [];
  let incident = before.incident;
  // A missed excursion that interrupted an unannounced down ended that incident: a flap.
  if (excursion && incident && !incident.alerted) incident = undefined;
  // The tunnel is part of the id: the tunnels of a dead worker all lose it at its last heartbeat,
  // and receivers (and SNS FIFO) drop alerts whose id they have seen.
  const alert = (type: AlertType, since: string, downQueuedAt?: string) =>
    alerts.push({
      id: `${tunnel.id}:${type}@${since}`,
      body: {
        type,
        tunnel: { id: tunnel.id, name: tunnel.name, workspaceId: tunnel.workspaceId },
        status: cloneStatus(status),
        at: now.toISOString(),
      },
      ...(downQueuedAt ? { downQueuedAt } : {}),
    });
  const mutedUntil = tunnel.alerts?.mutedUntil;
  const isMuted = mutedUntil !== undefined && Date.parse(mutedUntil) > now.getTime();
  if (status.state === 'down') {
    // An announced incident that is still settling goes on: a flap around the grace pages once.
    incident ??= { since: status.since, alerted: false };
    const isPastGrace = now.getTime() - Date.parse(incident.since) >= settings.downGraceMs;
    // Muted (maintenance): the incident stays unannounced; past the window, if still down, it is.
    if (!incident.alerted && isPastGrace && !isMuted) {
      alert('tunnel.down', incident.since);
      incident = { ...incident, alerted: true, alertedAt: now.toISOString() };
    }
  } else if (status.state === 'up') {
    // Recovery hysteresis: an announced incident closes once the tunnel has stayed up the settle time.
    const settleMs = settings.recoverySettleMs ?? 0;
    const isSettled = settleMs <= 0 || now.getTime() - Date.parse(status.since) >= settleMs;
    if (incident?.alerted && isSettled) {
      alert('tunnel.up', incident.since, incident.alertedAt);
      incident = undefined;
    } else if (!incident?.alerted) {
      incident = undefined;
    }
  } else if (incident && !incident.alerted) {
    // Disabled (or pending) before the grace ran out: nothing was said, nothing to resolve. An
    // announced incident stays open until the tunnel is up again, so downs and ups alternate.
    incident = undefined;
  }

  const record: StatusRecord = { state: status.state, since: status.since };
  copyOptional(record, status, 'lastSeenAt');
  if (status.error) record.error = { ...status.error };
  if (observed.source) record.source = observed.source;
  if (incident) record.incident = { ...incident };

  // Without a ledger yet: a new tunnel's starts at its creation; one recorded before ledgers
  // existed knows its history from the state it was last recorded in.
  const known = previous?.uptime ?? newLedger(previous ? before.since : tunnel.createdAt);
  const ledger = transitions.length > 0 ? recordTransitions(known, before, transitions, now) : known;

  const evaluation: StatusEvaluation = { status, connect: observed.connect, transitions, alerts, ledger };
  if (!isDeepStrictEqual(record, before)) evaluation.next = record;
  if (connectors) {
    evaluation.connectors = connectors;
    if (status.state !== 'disabled')
      status.connectors = { live: connectors.live, expected: connectors.expected };
  }
  return evaluation;
}

function connectorStatesOf(input: StatusInput): ConnectorStates | undefined {
  const { tunnel } = input;
  if (!hasConnectors(tunnel)) return undefined;
  return representativeState({
    tunnel: {
      ...tunnel,
      publicKey: tunnel.publicKey ?? '',
      publicKeyFingerprint: tunnel.publicKeyFingerprint ?? '',
    },
    ...(input.state ? { primary: input.state } : {}),
    ...(input.connectorStates ? { others: input.connectorStates } : {}),
    heartbeats: heartbeatsOf(input),
    ...(input.previous?.source ? { previousSource: input.previous.source } : {}),
    view:
      input.observingSince === undefined
        ? { now: input.now }
        : { now: input.now, observingSince: input.observingSince },
    settings: input.settings,
  });
}

/** Every owner's heartbeat the input has, the primary owner's among them. */
function heartbeatsOf(input: StatusInput): Map<string, WorkerHeartbeat> {
  const beats = new Map(input.heartbeats ?? []);
  if (input.heartbeat) beats.set(input.heartbeat.workerId, input.heartbeat);
  return beats;
}

function withRepresentative(input: StatusInput, connectors: ConnectorStates): StatusInput {
  const { state: _primary, heartbeat: _beat, ...rest } = input;
  const out: StatusInput = { ...rest };
  if (connectors.state) out.state = connectors.state;
  if (connectors.heartbeat) out.heartbeat = connectors.heartbeat;
  return out;
}

interface Observation extends StatusView {
  source?: NonNullable<StatusRecord['source']>;
  /** Why the tunnel is down when that was no failure (a gateway's clean shutdown). */
  cause?: DownCause;
}

/** What the inputs say right now, before history (previous record) is taken into account. */
function observe({ tunnel, state, heartbeat, now, observingSince, settings }: StatusInput): Observation {
  if (!tunnel.enabled) return { status: { state: 'disabled', since: tunnel.updatedAt }, connect: null };
  if (!state) return { status: { state: 'pending', since: tunnel.createdAt }, connect: null };
  const source = sourceOf(state);

  if (state.state === 'down') {
    const status: Status = { state: 'down', since: state.since };
    copyOptional(status, state, 'lastSeenAt');
    status.error = state.error ? { ...state.error } : defaultDownError(tunnel);
    return state.cause
      ? { status, connect: null, source, cause: state.cause }
      : { status, connect: null, source };
  }

  const lost = ownerLost(state, heartbeat, { now, observingSince }, settings);
  if (lost) {
    const status: Status = { state: 'down', since: maxIso(state.since, lost.since), error: lost.error };
    const lastSeenAt = lost.lastSeenAt ?? state.lastSeenAt;
    if (lastSeenAt) status.lastSeenAt = lastSeenAt;
    return { status, connect: null, source };
  }
  const status: Status = { state: 'up', since: state.since };
  copyOptional(status, state, 'lastSeenAt');
  // Standard tunnels: which key the session logged in with, so a rotation's progress is visible.
  if (state.keyFingerprint && state.keyFingerprint !== 'password')
    status.keyFingerprint = state.keyFingerprint;
  // A stable address for the port wins over the worker's own: the tunnel keeps it across gateways.
  const host =
    (settings.connectHosts && connectHostFor(settings.connectHosts, tunnel.port)) ??
    state.connectHost ??
    settings.bindHost;
  return { status, connect: { host, port: tunnel.port }, source };
}

/**
 * An `up` is only as true as the worker that wrote it: without a live owner (see liveness.ts), or
 * when the owner restarted after the connection began (the connection died with the process), the
 * tunnel is down with `worker_lost`, since the moment the owner went (when nothing says when, since
 * it is first seen gone: never earlier than the truth).
 */
function ownerLost(
  state: TunnelStateItem,
  heartbeat: WorkerHeartbeat | undefined,
  view: LivenessView,
  settings: StatusSettings,
): { since: string; lastSeenAt?: string; error: StatusError } | undefined {
  const hint = WORKER_LOST_HINT;
  const firstSeen = view.now.toISOString();
  if (!state.owner) {
    return {
      since: firstSeen,
      error: { code: 'worker_lost', message: 'no gateway worker is recorded as holding the tunnel', hint },
    };
  }
  const mine = heartbeat?.workerId === state.owner ? heartbeat : undefined;
  const liveness = workerLiveness(mine, view, settings);
  if (!liveness.isAlive) {
    const worker = `gateway worker ${state.owner}`;
    const message = {
      missing: `${worker} holding the tunnel has no heartbeat`,
      stopped: `${worker} holding the tunnel shut down at ${liveness.since}`,
      stale: `${worker} stopped heartbeating; last heartbeat at ${liveness.lastBeatAt} (stale after ${workerGoneAfterMs(settings)} ms)`,
    }[liveness.why];
    const lost: { since: string; lastSeenAt?: string; error: StatusError } = {
      since: liveness.since ?? firstSeen,
      error: { code: 'worker_lost', message, hint },
    };
    if (liveness.lastBeatAt) lost.lastSeenAt = liveness.lastBeatAt;
    return lost;
  }
  const connectedAt = state.connectedAt ?? state.since;
  if (mine && Date.parse(mine.startedAt) > Date.parse(connectedAt)) {
    return {
      since: mine.startedAt,
      error: {
        code: 'worker_lost',
        message: `gateway worker ${state.owner} restarted at ${mine.startedAt}, after the tunnel connected at ${connectedAt}`,
        hint,
      },
    };
  }
  return undefined;
}

/** How long a reverse tunnel lost with its worker is expected back before the customer is blamed. */
export function reconnectWindowMs(settings: LivenessSettings): number {
  return 3 * settings.keepaliveIntervalMs + settings.heartbeatIntervalMs;
}

/**
 * A reverse tunnel's session died with its worker; the customer's autossh or systemd unit
 * reconnects within about the contract's bound for noticing a drop (3 keepalives and a heartbeat).
 * Past it, the lost worker is history: what is true now is that no customer session holds the
 * forward (a plain ssh does not come back by itself).
 */
function afterReconnectWindow(status: Status, now: Date, settings: StatusSettings): StatusError | undefined {
  // Over at `>=`, as the grace is: with a grace equal to the window, the page says what is true then.
  if (now.getTime() - Date.parse(status.since) < reconnectWindowMs(settings)) return undefined;
  return customerNotConnected(
    `the gateway worker holding the session was lost at ${status.since} and no customer session has connected since ` +
      '(autossh or the systemd unit reconnects by itself; a plain ssh must be started again)',
  );
}

const WORKER_LOST_HINT =
  'Nothing to change on your side: standard tunnels are taken over by another gateway worker, and a ' +
  'reverse tunnel reconnects by itself when it runs under autossh or the systemd unit from ' +
  'reverse.commands (a plain ssh must be restarted). If it stays down for minutes, contact support.';

/** A worker that writes `down` names the cause; if it did not, say the most likely one. */
function defaultDownError(tunnel: StatusTunnel): StatusError {
  if (tunnel.type === 'reverse' || !tunnel.ssh) return customerNotConnected('no session holds the forward');
  return connectionLost(hostPort(tunnel.ssh.host, tunnel.ssh.port), 'no cause was recorded');
}

/**
 * Whether the newer STATE item shows a state the previous run never saw. Across two items of one
 * state: another connection means the opposite state happened in between. From `up` to `down` is
 * always a transition, so only downs matter here: an `up` item (now lost with its worker) or a
 * `down` naming a connection (only connections that were up write one) says it was up meanwhile;
 * a `down` without a connection (a standard tunnel still failing, for another reason) does not.
 */
function missedExcursion(
  before: StatusRecord['source'],
  now: StatusRecord['source'],
  continues: string | undefined,
): boolean {
  if (!before || !now) return false;
  // A connection that took over from the one we saw (a takeover, a key switch) left no gap.
  if (before.state === 'up' && now.state === 'up' && continues !== undefined && continues === before.connId) {
    return false;
  }
  const another =
    before.connId !== undefined && now.connId !== undefined
      ? before.connId !== now.connId
      : before.since !== now.since || before.state !== now.state;
  return another && (now.state === 'up' || now.connId !== undefined);
}

/** Only the record's own fields, so a STATUS item with its outbox compares equal to its record. */
function recordOf(previous: StatusRecord): StatusRecord {
  const record: StatusRecord = { state: previous.state, since: previous.since };
  copyOptional(record, previous, 'lastSeenAt');
  if (previous.error) record.error = { ...previous.error };
  if (previous.source) record.source = sourceOf(previous.source);
  if (previous.incident) {
    record.incident = { since: previous.incident.since, alerted: previous.incident.alerted };
    if (previous.incident.alertedAt !== undefined) record.incident.alertedAt = previous.incident.alertedAt;
  }
  return record;
}

function sourceOf(item: {
  state: 'up' | 'down';
  since: string;
  connId?: string;
}): NonNullable<StatusRecord['source']> {
  const source: NonNullable<StatusRecord['source']> = { state: item.state, since: item.since };
  if (item.connId !== undefined) source.connId = item.connId;
  return source;
}

/**
 * The down between two connections that no run saw. The STATE item keeps its newest down: if that
 * began after the state the previous run saw, it is this one, and tells when and why.
 */
function missedDown(before: StatusRecord, state: TunnelStateItem | undefined, upSince: string): TunnelEvent {
  const out: TunnelEvent = { at: upSince, from: before.state, to: 'down' };
  const last = state?.lastDown;
  if (!last || Date.parse(last.since) < Date.parse(before.since)) return out;
  // Never after the up that followed it, whatever two workers' clocks said.
  if (Date.parse(last.since) < Date.parse(upSince)) out.at = last.since;
  if (last.error) out.error = { ...last.error };
  if (last.cause) out.cause = last.cause;
  return out;
}

/** The event of entering `status` from `from`, which began at `fromSince`. */
function event(
  from: TunnelStateName,
  fromSince: string,
  status: Status,
  cause: DownCause | undefined,
): TunnelEvent {
  const out: TunnelEvent = { at: status.since, from, to: status.state };
  if (status.error) out.error = { ...status.error };
  if (status.state === 'down' && cause) out.cause = cause;
  if (from === 'down' && status.state === 'up') {
    out.downMs = Math.max(0, Date.parse(status.since) - Date.parse(fromSince));
  }
  return out;
}

function cloneStatus(status: Status): Status {
  const copy: Status = { ...status };
  if (status.error) copy.error = { ...status.error };
  return copy;
}

function copyOptional<K extends 'lastSeenAt'>(
  to: { [P in K]?: string },
  from: { [P in K]?: string },
  key: K,
): void {
  const value = from[key];
  if (value === undefined) delete to[key];
  else to[key] = value;
}

/** The later of two ISO timestamps (compared as instants, not as strings). */
function maxIso(a: string, b: string): string {
  return Date.parse(b) > Date.parse(a) ? b : a;
}

/**
 * The view of a tunnel some of whose status items cannot be read (read-items.ts): without its STATE
 * item, the status last recorded (the truth now is unknown, so no `connect`); without its STATUS
 * item, the status from STATE alone. Either way a `status_unreadable` warning says so.
 */
export function evaluateWithUnreadable(input: StatusInput, unreadable: UnreadableItem[]): StatusView {
  const isStateLost = unreadable.some((u) => u.item === 'STATE');
  const view: StatusView = isStateLost
    ? { status: recordedStatus(input), connect: null }
    : evaluateStatus({ ...input, previous: undefined });
  const items = unreadable.map((u) => `${u.item} (${u.reason})`).join(', ');
  view.status.warnings = [
    {
      code: 'status_unreadable',
      message: `stored status items of this tunnel cannot be read: ${items}; ${
        isStateLost
          ? 'the status shown is the last one recorded'
          : 'the status shown is derived without its history'
      }`,
      hint: 'Nothing to change on your side: the tunnel itself is not affected, and the operators have it in their log.',
      since: input.now.toISOString(),
    },
  ];
  return view;
}

function recordedStatus({ tunnel, previous }: StatusInput): Status {
  if (!previous) return { state: 'pending', since: tunnel.createdAt };
  const status: Status = { state: previous.state, since: previous.since };
  copyOptional(status, previous, 'lastSeenAt');
  if (previous.error) status.error = { ...previous.error };
  return status;
}

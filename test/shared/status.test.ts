import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type TunnelStateItem,
  TunnelStateItemSchema,
  type WorkerHeartbeat,
} from '../../shared/gateway-items';
import { workerGoneAfterMs } from '../../shared/liveness';
import { AlertSchema, ConnectSchema, type StatusError, StatusSchema } from '../../shared/schemas';
import {
  evaluateStatus,
  type StatusEvaluation,
  type StatusInput,
  type StatusSettings,
  type StatusTunnel,
  type StatusView,
  statusSettingsFrom,
} from '../../shared/status';
import { type StatusRecord, StatusRecordSchema } from '../../shared/status-items';

const T0 = Date.parse('2026-01-03T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const at = (offsetMs: number) => iso(T0 + offsetMs);
const S = 1000;
const MIN = 60 * S;

const CREATED = '2026-01-01T00:00:00.000Z';
const UPDATED = '2026-01-02T00:00:00.000Z';
const BIND = '10.0.5.7';
const PORT = 20001;
const SETTINGS: StatusSettings = {
  heartbeatIntervalMs: 15 * S,
  keepaliveIntervalMs: 15 * S,
  downGraceMs: 2 * MIN,
  bindHost: BIND,
};
/** 2 × 15 s + 5 s with the defaults. */
const STALE = 35 * S;

const tunnel = (over: Partial<StatusTunnel> = {}): StatusTunnel => ({
  id: 'tun_aaaaaaaaaaaaaaaa',
  name: 'orders-db',
  workspaceId: 'ws_1',
  type: 'reverse',
  enabled: true,
  createdAt: CREATED,
  updatedAt: UPDATED,
  port: PORT,
  ...over,
});
const standard = tunnel({ type: 'standard', ssh: { host: 'bastion.example.com', port: 2222 } });

const lost: StatusError = {
  code: 'customer_not_connected',
  message: 'no customer ssh session holds the reverse tunnel: session ended',
  hint: 'run the ssh command',
};
const up = (sinceMs: number, over: Partial<TunnelStateItem> = {}): TunnelStateItem => ({
  state: 'up',
  since: at(sinceMs),
  owner: 'w1',
  connId: `c${sinceMs}`,
  connectedAt: at(sinceMs),
  ...over,
});
const down = (sinceMs: number, over: Partial<TunnelStateItem> = {}): TunnelStateItem => ({
  state: 'down',
  since: at(sinceMs),
  owner: 'w1',
  error: lost,
  ...over,
});
const beat = (lastBeatMs: number, over: Partial<WorkerHeartbeat> = {}): WorkerHeartbeat => ({
  workerId: 'w1',
  lastBeatAt: at(lastBeatMs),
  startedAt: at(-60 * MIN),
  address: '10.0.9.9',
  version: 'test',
  counts: { reverse: 1, standard: 0 },
  ...over,
});

const evaluate = (over: Partial<StatusInput> & { nowMs?: number }): StatusEvaluation => {
  const { nowMs = 0, ...rest } = over;
  return evaluateStatus({ tunnel: tunnel(), now: new Date(T0 + nowMs), settings: SETTINGS, ...rest });
};

describe('workerGoneAfterMs', () => {
  it.each([
    ['the defaults: two beats and 5 s', 15_000, 15_000, 35_000],
    ['short test intervals: the margin is one beat', 200, 1_000, 600],
    ['slow beats under fast keepalives: the contract bound caps it', 10_000, 1_000, 13_000],
    ['a minute between beats', 60_000, 15_000, 105_000],
  ])('%s', (_, heartbeatIntervalMs, keepaliveIntervalMs, expected) => {
    expect(workerGoneAfterMs({ heartbeatIntervalMs, keepaliveIntervalMs })).toBe(expected);
    // Never within one missed beat, never past the contract's bound for a dropped connection.
    expect(expected).toBeGreaterThan(heartbeatIntervalMs);
    expect(expected).toBeLessThanOrEqual(3 * keepaliveIntervalMs + heartbeatIntervalMs);
  });
});

describe('statusSettingsFrom', () => {
  it('takes the five settings from the configuration', () => {
    expect(
      statusSettingsFrom({
        HEARTBEAT_INTERVAL_MS: 1,
        SSH_KEEPALIVE_INTERVAL_MS: 2,
        DOWN_GRACE_MS: 3,
        TUNNEL_BIND_HOST: 'h',
        RECOVERY_SETTLE_MS: 4,
      }),
    ).toEqual({
      heartbeatIntervalMs: 1,
      keepaliveIntervalMs: 2,
      downGraceMs: 3,
      bindHost: 'h',
      recoverySettleMs: 4,
    });
  });
});

describe('evaluateStatus: what the API shows', () => {
  const workerLost = (message: RegExp) => ({
    code: 'worker_lost' as const,
    message: expect.stringMatching(message),
    hint: expect.stringMatching(/autossh/),
  });
  it.each<[string, Partial<StatusInput> & { nowMs?: number }, StatusView]>([
    [
      'disabled, no state item',
      { tunnel: tunnel({ enabled: false }) },
      { status: { state: 'disabled', since: UPDATED }, connect: null },
    ],
    [
      'disabled beats an up state item with a live owner',
      { tunnel: tunnel({ enabled: false }), state: up(-MIN), heartbeat: beat(-S) },
      { status: { state: 'disabled', since: UPDATED }, connect: null },
    ],
    [
      'disabled beats a down state item with an error',
      { tunnel: tunnel({ enabled: false }), state: down(-MIN) },
      { status: { state: 'disabled', since: UPDATED }, connect: null },
    ],
    [
      'enabled, no state item: pending since creation',
      {},
      { status: { state: 'pending', since: CREATED }, connect: null },
    ],
    [
      'up with a fresh owner heartbeat: reachable at the bind host and the tunnel port',
      { state: up(-MIN, { lastSeenAt: at(-MIN) }), heartbeat: beat(-S) },
      {
        status: { state: 'up', since: at(-MIN), lastSeenAt: at(-MIN) },
        connect: { host: BIND, port: PORT },
      },
    ],
    [
      "up through a worker that names its listener address: that is connect's host",
      { state: up(-MIN, { connectHost: '10.0.9.9' }), heartbeat: beat(-S) },
      { status: { state: 'up', since: at(-MIN) }, connect: { host: '10.0.9.9', port: PORT } },
    ],
    [
      'up, the last beat exactly at the stale bound: still up',
      { state: up(-MIN), heartbeat: beat(-STALE) },
      { status: { state: 'up', since: at(-MIN) }, connect: { host: BIND, port: PORT } },
    ],
    [
      'up, the last beat 1 ms past the stale bound: down, worker_lost since that beat',
      { state: up(-MIN), heartbeat: beat(-STALE - 1) },
      {
        status: {
          state: 'down',
          since: at(-STALE - 1),
          lastSeenAt: at(-STALE - 1),
          error: workerLost(/w1 stopped heartbeating; last heartbeat at .* \(stale after 35000 ms\)/),
        },
        connect: null,
      },
    ],
    [
      'up, the owner has no heartbeat at all (expired): worker_lost since first seen so, never earlier',
      { state: up(-MIN, { lastSeenAt: at(-MIN) }) },
      {
        status: {
          state: 'down',
          since: at(0),
          lastSeenAt: at(-MIN),
          error: workerLost(/w1 holding the tunnel has no heartbeat/),
        },
        connect: null,
      },
    ],
    [
      "up, but the heartbeat given is another worker's",
      { state: up(-MIN), heartbeat: beat(-S, { workerId: 'w2' }) },
      { status: { state: 'down', since: at(0), error: workerLost(/w1 .* no heartbeat/) }, connect: null },
    ],
    [
      'up without an owner: nobody vouches for it',
      { state: up(-MIN, { owner: undefined }), heartbeat: beat(-S) },
      { status: { state: 'down', since: at(0), error: workerLost(/no gateway worker/) }, connect: null },
    ],
    [
      'up, the owner shut down cleanly: worker_lost since its stop',
      { state: up(-MIN), heartbeat: beat(-10 * S, { stoppedAt: at(-10 * S) }) },
      {
        status: {
          state: 'down',
          since: at(-10 * S),
          lastSeenAt: at(-10 * S),
          error: workerLost(/w1 holding the tunnel shut down at/),
        },
        connect: null,
      },
    ],
    [
      'up, a stale beat the reader could not have seen (its view of the table came back late): still up',
      { state: up(-MIN), heartbeat: beat(-STALE - 10 * S), observingSince: T0 - 5 * S },
      { status: { state: 'up', since: at(-MIN) }, connect: { host: BIND, port: PORT } },
    ],
    [
      'a reverse tunnel whose worker was lost long ago: no customer session reconnected since',
      { state: up(-10 * MIN), heartbeat: beat(-2 * MIN) },
      {
        status: {
          state: 'down',
          since: at(-2 * MIN),
          lastSeenAt: at(-2 * MIN),
          error: {
            code: 'customer_not_connected',
            message: expect.stringMatching(
              /worker holding the session was lost at .* a plain ssh must be started/,
            ),
            hint: expect.stringMatching(/autossh/),
          },
        },
        connect: null,
      },
    ],
    [
      'a standard tunnel whose worker was lost long ago: still worker_lost (another worker takes it)',
      { tunnel: standard, state: up(-10 * MIN), heartbeat: beat(-2 * MIN) },
      {
        status: {
          state: 'down',
          since: at(-2 * MIN),
          lastSeenAt: at(-2 * MIN),
          error: workerLost(/w1 stopped heartbeating/),
        },
        connect: null,
      },
    ],
    [
      'a gateway restart handed the tunnel over: down with the cause the worker wrote',
      { state: down(-5 * S, { cause: 'restart', error: lost }), heartbeat: beat(-S) },
      { status: { state: 'down', since: at(-5 * S), error: lost }, connect: null },
    ],
    [
      'up, but the owner restarted after the connection began: the connection died with it',
      { state: up(-MIN), heartbeat: beat(-S, { startedAt: at(-30 * S) }) },
      { status: { state: 'down', since: at(-30 * S), error: workerLost(/w1 restarted at/) }, connect: null },
    ],
    [
      'down with an error: passed through, no connect, whatever the heartbeat',
      { state: down(-MIN, { lastSeenAt: at(-2 * MIN) }), heartbeat: beat(-S) },
      { status: { state: 'down', since: at(-MIN), lastSeenAt: at(-2 * MIN), error: lost }, connect: null },
    ],
    [
      'reverse down without an error: the customer is not connected',
      { state: down(-MIN, { error: undefined }) },
      {
        status: {
          state: 'down',
          since: at(-MIN),
          error: {
            code: 'customer_not_connected',
            message: expect.stringContaining('no session holds the forward'),
            hint: expect.stringMatching(/autossh/),
          },
        },
        connect: null,
      },
    ],
    [
      'standard down without an error: the session to the bastion was lost',
      { tunnel: standard, state: down(-MIN, { error: undefined }) },
      {
        status: {
          state: 'down',
          since: at(-MIN),
          error: {
            code: 'connection_lost',
            message: expect.stringContaining('bastion.example.com:2222'),
            hint: expect.any(String),
          },
        },
        connect: null,
      },
    ],
  ])('%s', (_, input, expected) => {
    const view = evaluate(input);
    expect({ status: view.status, connect: view.connect }).toEqual(expected);
    // Strict: no worker-internal field (owner, connId) and no undefined key leaks into the API.
    expect(StatusSchema.strict().parse(view.status)).toStrictEqual(view.status);
    expect(ConnectSchema.parse(view.connect)).toStrictEqual(view.connect);
    expect(Object.values(view.status).some((v) => v === undefined)).toBe(false);
  });

  describe('with CONNECT_HOSTS (a stable address per block of ports)', () => {
    const blocks = [
      { from: 20000, to: 20000, host: 'connect-0.internal' },
      { from: 20001, to: 20049, host: 'connect-1.internal' },
    ];
    const stable = { ...SETTINGS, connectHosts: blocks };

    it.each<[string, Partial<StatusInput>]>([
      [
        'a reverse tunnel on a worker that names its own address',
        { state: up(-MIN, { connectHost: '10.0.9.9' }) },
      ],
      ['a reverse tunnel on a worker that names none', { state: up(-MIN) }],
      ['a standard tunnel', { tunnel: standard, state: up(-MIN, { connectHost: '10.0.9.9' }) }],
    ])("names the port's block host, not the worker: %s", (_, input) => {
      const view = evaluate({ heartbeat: beat(-S), settings: stable, ...input });
      expect(view.connect).toEqual({ host: 'connect-1.internal', port: PORT });
    });

    it('still shows no address while the tunnel is down', () => {
      expect(evaluate({ state: down(-MIN), settings: stable }).connect).toBeNull();
    });

    it('reads the blocks from the configuration', () => {
      const settings = statusSettingsFrom({
        HEARTBEAT_INTERVAL_MS: 1,
        SSH_KEEPALIVE_INTERVAL_MS: 2,
        DOWN_GRACE_MS: 3,
        TUNNEL_BIND_HOST: 'h',
        RECOVERY_SETTLE_MS: 4,
        CONNECT_HOSTS: blocks,
      });
      expect(settings.connectHosts).toEqual(blocks);
    });
  });

  it('keeps a lost worker\'s "since" and message once its heartbeat has expired', () => {
    const seen = evaluate({ tunnel: standard, state: up(-10 * MIN), heartbeat: beat(-MIN) });
    const later = evaluate({ tunnel: standard, state: up(-10 * MIN), previous: seen.next, nowMs: 5 * MIN });
    expect(later.status).toEqual(seen.status);
    expect(later.transitions).toEqual([]);
    // Only the incident moved on: its grace ran out.
    expect(later.next).toEqual({
      ...seen.next,
      incident: { since: at(-MIN), alerted: true, alertedAt: at(5 * MIN) },
    });
  });

  it('records a missed flap between two connections, but not a takeover that left no gap', () => {
    const first = evaluate({ state: up(-MIN), heartbeat: beat(-S) });
    const reconnect = evaluate({ state: up(-S), heartbeat: beat(-S), previous: first.next });
    expect(reconnect.transitions.map((t) => `${t.from}->${t.to}`)).toEqual(['up->down', 'down->up']);
    const takeover = evaluate({
      state: up(-S, { continues: first.next?.source?.connId }),
      heartbeat: beat(-S),
      previous: first.next,
    });
    expect(takeover.transitions).toEqual([]);
    expect(takeover.status).toEqual(first.status);
  });

  it("tells when and why a missed flap dropped, from the STATE item's newest down", () => {
    const first = evaluate({ state: up(-MIN), heartbeat: beat(-S) });
    const dropped = { since: at(-3 * S), connId: `c${-MIN}`, error: lost };
    const reconnect = evaluate({
      state: up(-S, { lastDown: dropped }),
      heartbeat: beat(-S),
      previous: first.next,
    });
    expect(reconnect.transitions).toEqual([
      { at: at(-3 * S), from: 'up', to: 'down', error: lost },
      { at: at(-S), from: 'down', to: 'up', downMs: 2 * S },
    ]);
    // A down from before the up the previous run saw is not this flap's: when and why stay unknown.
    const older = evaluate({
      state: up(-S, { lastDown: { ...dropped, since: at(-2 * MIN) } }),
      heartbeat: beat(-S),
      previous: first.next,
    });
    expect(older.transitions[0]).toEqual({ at: at(-S), from: 'up', to: 'down' });
    // Clocks of two workers disagree: the down is never placed after the up that followed it.
    const skewed = evaluate({
      state: up(-S, { lastDown: { ...dropped, since: at(0) } }),
      heartbeat: beat(-S),
      previous: first.next,
    });
    expect(skewed.transitions[0]).toEqual({ at: at(-S), from: 'up', to: 'down', error: lost });
    // lastDown is the store's memory, not the status: it changes nothing else.
    expect(reconnect.status).toEqual(
      evaluate({ state: up(-S), heartbeat: beat(-S), previous: first.next }).status,
    );
  });

  it('returns a status the caller may change without touching the inputs', () => {
    const state = down(-MIN);
    const snapshot = structuredClone(state);
    const view = evaluate({ state });
    view.status.since = 'changed';
    if (view.status.error) view.status.error.message = 'changed';
    expect(state).toEqual(snapshot);
  });
});

/** A run of evaluations as the sweeper makes them: each persists its record for the next. */
function sweepAt(
  steps: {
    nowMs: number;
    state?: TunnelStateItem;
    heartbeat?: WorkerHeartbeat;
    enabled?: boolean;
    updatedMs?: number;
    mutedUntilMs?: number;
  }[],
  settings: StatusSettings = SETTINGS,
) {
  let previous: StatusRecord | undefined;
  const alerts: [string, number][] = [];
  const events: [string, string, number][] = [];
  const views: StatusEvaluation[] = [];
  for (const step of steps) {
    const view = evaluateStatus({
      tunnel: tunnel({
        enabled: step.enabled ?? true,
        updatedAt: step.updatedMs === undefined ? UPDATED : at(step.updatedMs),
        ...(step.mutedUntilMs === undefined ? {} : { alerts: { mutedUntil: at(step.mutedUntilMs) } }),
      }),
      state: step.state,
      heartbeat: step.heartbeat,
      previous,
      now: new Date(T0 + step.nowMs),
      settings,
    });
    views.push(view);
    for (const a of view.alerts) alerts.push([a.body.type, step.nowMs]);
    for (const t of view.transitions) events.push([t.from, t.to, Date.parse(t.at) - T0]);
    previous = view.next ?? previous;
  }
  return { alerts, events, views, record: previous };
}

describe('evaluateStatus: incidents and alerts over a run of sweeps', () => {
  const live = (nowMs: number) => beat(nowMs - S);

  it('sends tunnel.down once the tunnel has been down for the grace, then tunnel.up once', () => {
    const run = sweepAt([
      { nowMs: -MIN, state: up(-2 * MIN), heartbeat: live(-MIN) },
      { nowMs: 30 * S, state: down(0) },
      { nowMs: 90 * S, state: down(0) },
      { nowMs: 119_999, state: down(0) },
      { nowMs: 2 * MIN, state: down(0) },
      { nowMs: 3 * MIN, state: down(0) },
      { nowMs: 4 * MIN, state: up(200 * S), heartbeat: live(4 * MIN) },
      { nowMs: 5 * MIN, state: up(200 * S), heartbeat: live(5 * MIN) },
    ]);
    expect(run.alerts).toEqual([
      ['tunnel.down', 2 * MIN],
      ['tunnel.up', 4 * MIN],
    ]);
    expect(run.events).toEqual([
      ['pending', 'up', -2 * MIN],
      ['up', 'down', 0],
      ['down', 'up', 200 * S],
    ]);
    const [downAlert] = run.views[4]?.alerts ?? [];
    expect(AlertSchema.strict().parse(downAlert?.body)).toEqual({
      type: 'tunnel.down',
      tunnel: { id: 'tun_aaaaaaaaaaaaaaaa', name: 'orders-db', workspaceId: 'ws_1' },
      status: { state: 'down', since: at(0), error: lost },
      at: at(2 * MIN),
    });
    expect(downAlert?.id).toBe(`tun_aaaaaaaaaaaaaaaa:tunnel.down@${at(0)}`);
    expect(run.views[6]?.alerts[0]?.id).toBe(`tun_aaaaaaaaaaaaaaaa:tunnel.up@${at(0)}`);
    expect(run.record?.incident).toBeUndefined();
  });

  it('names the alerts of tunnels lost at the same instant apart (a dead worker loses all at once)', () => {
    const ids = ['tun_aaaaaaaaaaaaaaaa', 'tun_bbbbbbbbbbbbbbbb'].map((id) => {
      const first = evaluate({ tunnel: tunnel({ id }), state: up(-MIN), heartbeat: beat(-S), nowMs: 0 });
      // Same owner, same last heartbeat: both incidents begin at that heartbeat.
      const alerts = evaluate({
        tunnel: tunnel({ id }),
        state: up(-MIN),
        heartbeat: beat(0),
        previous: first.next,
        nowMs: STALE + SETTINGS.downGraceMs + S,
      }).alerts;
      expect(alerts.map((a) => a.body.type)).toEqual(['tunnel.down']);
      return alerts[0]?.id;
    });
    expect(ids[0]).not.toBe(ids[1]);
  });

  it.each<[string, Parameters<typeof sweepAt>[0], [string, number][], [string, string, number][]]>([
    [
      'a flap shorter than the grace, seen by the sweeper: both transitions, no alert',
      [
        { nowMs: 0, state: up(-MIN), heartbeat: live(0) },
        { nowMs: 30 * S, state: down(10 * S) },
        { nowMs: 60 * S, state: down(10 * S) },
        { nowMs: 120 * S, state: up(100 * S), heartbeat: live(120 * S) },
        { nowMs: 10 * MIN, state: up(100 * S), heartbeat: live(10 * MIN) },
      ],
      [],
      [
        ['pending', 'up', -MIN],
        ['up', 'down', 10 * S],
        ['down', 'up', 100 * S],
      ],
    ],
    [
      'a flap between two sweeps: the newer connection tells, both transitions are recorded',
      [
        { nowMs: 0, state: up(-MIN), heartbeat: live(0) },
        { nowMs: MIN, state: up(40 * S), heartbeat: live(MIN) },
      ],
      [],
      [
        ['pending', 'up', -MIN],
        ['up', 'down', 40 * S],
        ['down', 'up', 40 * S],
      ],
    ],
    [
      'first seen down long after it went down: alerted at once',
      [
        { nowMs: 0, state: up(-MIN), heartbeat: live(0) },
        { nowMs: 10 * MIN, state: down(S) },
      ],
      [['tunnel.down', 10 * MIN]],
      [
        ['pending', 'up', -MIN],
        ['up', 'down', S],
      ],
    ],
    [
      'a dead owner: down from its last beat, alerted a grace later; a takeover brings tunnel.up',
      [
        { nowMs: 0, state: up(-MIN), heartbeat: live(0) },
        { nowMs: 30 * S, state: up(-MIN), heartbeat: beat(5 * S) },
        { nowMs: 60 * S, state: up(-MIN), heartbeat: beat(5 * S) },
        { nowMs: 124 * S, state: up(-MIN), heartbeat: beat(5 * S) },
        { nowMs: 125 * S, state: up(-MIN), heartbeat: beat(5 * S) },
        { nowMs: 126 * S, state: up(-MIN) },
        { nowMs: 150 * S, state: up(140 * S, { owner: 'w2' }), heartbeat: beat(149 * S, { workerId: 'w2' }) },
      ],
      [
        ['tunnel.down', 125 * S],
        ['tunnel.up', 150 * S],
      ],
      [
        ['pending', 'up', -MIN],
        ['up', 'down', 5 * S],
        ['down', 'up', 140 * S],
      ],
    ],
    [
      'a dead owner taken over within the grace: no alert',
      [
        { nowMs: 0, state: up(-MIN), heartbeat: live(0) },
        { nowMs: 60 * S, state: up(-MIN), heartbeat: beat(5 * S) },
        { nowMs: 90 * S, state: up(80 * S, { owner: 'w2' }), heartbeat: beat(89 * S, { workerId: 'w2' }) },
      ],
      [],
      [
        ['pending', 'up', -MIN],
        ['up', 'down', 5 * S],
        ['down', 'up', 80 * S],
      ],
    ],
    [
      'down, a recovery the sweeper missed, down again: a new incident, its own grace',
      [
        { nowMs: 0, state: up(-MIN), heartbeat: live(0) },
        { nowMs: 30 * S, state: down(0, { connId: 'c1' }) },
        { nowMs: 90 * S, state: down(70 * S, { connId: 'c2' }) },
        { nowMs: 170 * S, state: down(70 * S, { connId: 'c2' }) },
        { nowMs: 190 * S, state: down(70 * S, { connId: 'c2' }) },
      ],
      [['tunnel.down', 190 * S]],
      [
        ['pending', 'up', -MIN],
        ['up', 'down', 0],
        ['down', 'up', 70 * S],
        ['up', 'down', 70 * S],
      ],
    ],
    [
      'an alerted incident with a missed recovery stays one incident: one tunnel.up at the end',
      [
        { nowMs: 0, state: down(-10 * MIN, { connId: 'c1' }) },
        { nowMs: MIN, state: down(50 * S, { connId: 'c2' }) },
        { nowMs: 2 * MIN, state: up(100 * S), heartbeat: live(2 * MIN) },
      ],
      [
        ['tunnel.down', 0],
        ['tunnel.up', 2 * MIN],
      ],
      [
        ['pending', 'down', -10 * MIN],
        ['down', 'up', 50 * S],
        ['up', 'down', 50 * S],
        ['down', 'up', 100 * S],
      ],
    ],
    [
      'disabled before the grace ran out: no alert; enabled again still down: a fresh grace',
      [
        { nowMs: 0, state: up(-MIN), heartbeat: live(0) },
        { nowMs: 30 * S, state: down(10 * S) },
        { nowMs: 60 * S, state: down(10 * S), enabled: false, updatedMs: 50 * S },
        { nowMs: 10 * MIN, state: down(10 * S), enabled: false, updatedMs: 50 * S },
        { nowMs: 11 * MIN, state: down(10 * S), updatedMs: 11 * MIN - S },
        { nowMs: 12 * MIN, state: down(10 * S), updatedMs: 11 * MIN - S },
        { nowMs: 13 * MIN, state: down(10 * S), updatedMs: 11 * MIN - S },
      ],
      [['tunnel.down', 13 * MIN]],
      [
        ['pending', 'up', -MIN],
        ['up', 'down', 10 * S],
        ['down', 'disabled', 50 * S],
        ['disabled', 'down', 11 * MIN - S],
      ],
    ],
    [
      'disabled during an alerted incident: no tunnel.up for that, one when it is up again',
      [
        { nowMs: 0, state: down(-10 * MIN) },
        { nowMs: MIN, state: down(-10 * MIN), enabled: false, updatedMs: 50 * S },
        { nowMs: 2 * MIN, state: down(-10 * MIN), updatedMs: 100 * S },
        { nowMs: 10 * MIN, state: down(-10 * MIN), updatedMs: 100 * S },
        { nowMs: 11 * MIN, state: up(10 * MIN), heartbeat: live(11 * MIN), updatedMs: 100 * S },
      ],
      [
        ['tunnel.down', 0],
        ['tunnel.up', 11 * MIN],
      ],
      [
        ['pending', 'down', -10 * MIN],
        ['down', 'disabled', 50 * S],
        ['disabled', 'down', 100 * S],
        ['down', 'up', 10 * MIN],
      ],
    ],
    ['never connected: pending, nothing recorded, nothing sent', [{ nowMs: 0 }, { nowMs: 10 * MIN }], [], []],
  ])('%s', (_, steps, alerts, events) => {
    const run = sweepAt(steps);
    expect(run.alerts).toEqual(alerts);
    expect(run.events).toEqual(events);
  });

  it('alerts on the first down sweep when the grace is 0', () => {
    const run = sweepAt(
      [
        { nowMs: 0, state: up(-MIN), heartbeat: live(0) },
        { nowMs: MIN, state: down(MIN) },
        { nowMs: 2 * MIN, state: up(90 * S), heartbeat: live(2 * MIN) },
      ],
      { ...SETTINGS, downGraceMs: 0 },
    );
    expect(run.alerts).toEqual([
      ['tunnel.down', MIN],
      ['tunnel.up', 2 * MIN],
    ]);
  });

  it('records nothing while nothing changes: an up tunnel is a fixed point', () => {
    const first = evaluate({ state: up(-MIN), heartbeat: beat(-S) });
    expect(first.next).toEqual({
      state: 'up',
      since: at(-MIN),
      source: { state: 'up', since: at(-MIN), connId: 'c-60000' },
    });
    for (const nowMs of [S, MIN, 60 * MIN]) {
      const again = evaluate({ state: up(-MIN), heartbeat: beat(nowMs - S), previous: first.next, nowMs });
      expect(again).toEqual({
        status: first.status,
        connect: first.connect,
        transitions: [],
        alerts: [],
        // A record from before uptime ledgers: history is known from its state's start on.
        ledger: { from: T0 - MIN, spans: [] },
      });
    }
  });

  it('reads a STATUS item with its outbox and version as the record it holds', () => {
    const first = evaluate({ state: up(-MIN), heartbeat: beat(-S) });
    const item = { ...first.next, version: 7, updatedAt: at(0), alerts: {} } as StatusRecord;
    expect(evaluate({ state: up(-MIN), heartbeat: beat(-S), previous: item }).next).toBeUndefined();
  });
});

// ---- properties over generated histories ----------------------------------------------------

type Step =
  | { kind: 'connect'; worker: 'w1' | 'w2' }
  | { kind: 'drop' }
  | { kind: 'kill'; worker: 'w1' | 'w2' }
  | { kind: 'disable' }
  | { kind: 'enable' }
  | { kind: 'sweep' }
  | { kind: 'read' };

interface World {
  nowMs: number;
  state?: TunnelStateItem;
  workers: Record<string, { startedAt: number; deadAt?: number }>;
  enabled: boolean;
  updatedMs: number;
}

/** The heartbeat item of a worker as the table would hold it at `nowMs`. */
function heartbeatOf(world: World, id: string | undefined): WorkerHeartbeat | undefined {
  const worker = id === undefined ? undefined : world.workers[id];
  if (!id || !worker) return undefined;
  const { heartbeatIntervalMs: every } = SETTINGS;
  const until = worker.deadAt ?? world.nowMs;
  const lastBeat = until - ((until - worker.startedAt) % every);
  return beat(lastBeat, { workerId: id, startedAt: at(worker.startedAt) });
}

interface Trace {
  alerts: { type: string; nowMs: number; since: string; status: string }[];
  events: { from: string; to: string; at: string }[];
  evaluations: { input: StatusInput; output: StatusEvaluation; persisted: boolean }[];
  record?: StatusRecord;
}

/** Plays a history: world changes, sweeps that persist, reads that do not. */
function play(timeline: { gapMs: number; step: Step }[], settings = SETTINGS): Trace {
  const world: World = { nowMs: 0, workers: {}, enabled: true, updatedMs: -MIN };
  const trace: Trace = { alerts: [], events: [], evaluations: [] };
  for (const { gapMs, step } of timeline) {
    world.nowMs += gapMs;
    const now = world.nowMs;
    switch (step.kind) {
      case 'connect': {
        const worker = world.workers[step.worker];
        if (!worker || worker.deadAt !== undefined) world.workers[step.worker] = { startedAt: now };
        world.state = up(now, { owner: step.worker });
        break;
      }
      case 'drop':
        // As the reverse gateway writes it: the connection that was up, now down.
        if (world.state?.state === 'up') {
          world.state = down(now, {
            owner: world.state.owner,
            connId: world.state.connId,
            lastSeenAt: at(now),
          });
        }
        break;
      case 'kill': {
        const worker = world.workers[step.worker];
        if (worker && worker.deadAt === undefined) worker.deadAt = now;
        break;
      }
      case 'disable':
      case 'enable':
        world.enabled = step.kind === 'enable';
        world.updatedMs = now;
        break;
      case 'sweep':
      case 'read': {
        const input: StatusInput = {
          tunnel: tunnel({ enabled: world.enabled, updatedAt: at(world.updatedMs), createdAt: at(-2 * MIN) }),
          state: world.state,
          heartbeat: heartbeatOf(world, world.state?.owner),
          previous: trace.record,
          now: new Date(T0 + now),
          settings,
        };
        const output = evaluateStatus(input);
        const persisted = step.kind === 'sweep';
        trace.evaluations.push({ input, output, persisted });
        if (persisted) {
          for (const a of output.alerts) {
            trace.alerts.push({
              type: a.body.type,
              nowMs: now,
              since: a.id.split('@')[1] ?? '',
              status: a.body.status.state,
            });
          }
          trace.events.push(...output.transitions);
          trace.record = output.next ?? trace.record;
        }
      }
    }
  }
  return trace;
}

const worker = fc.constantFrom<'w1' | 'w2'>('w1', 'w2');
const anyStep: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: worker.map((w): Step => ({ kind: 'connect', worker: w })) },
  { weight: 2, arbitrary: fc.constant<Step>({ kind: 'drop' }) },
  { weight: 1, arbitrary: worker.map((w): Step => ({ kind: 'kill', worker: w })) },
  { weight: 1, arbitrary: fc.constantFrom<Step>({ kind: 'disable' }, { kind: 'enable' }) },
  { weight: 10, arbitrary: fc.constant<Step>({ kind: 'sweep' }) },
  { weight: 2, arbitrary: fc.constant<Step>({ kind: 'read' }) },
);
// Gaps from instants (same-millisecond races) to minutes (past the grace), often a sweep apart.
const gap = fc.oneof(fc.integer({ min: 0, max: 2 * S }), fc.integer({ min: 0, max: 3 * MIN }));
const timeline = fc.array(fc.record({ gapMs: gap, step: anyStep }), { maxLength: 80, size: 'large' });
const RUNS = { numRuns: 400 };

/** Any record a previous run might have persisted (including nonsense an old version wrote). */
const StatusRecordArb: fc.Arbitrary<StatusRecord> = fc.record(
  {
    state: fc.constantFrom('pending', 'up', 'down', 'disabled'),
    since: fc.integer({ min: -60 * MIN, max: 0 }).map(at),
    source: fc.record({
      state: fc.constantFrom('up', 'down'),
      since: fc.integer({ min: -60 * MIN, max: 0 }).map(at),
    }),
    incident: fc.record({ since: fc.integer({ min: -60 * MIN, max: 0 }).map(at), alerted: fc.boolean() }),
  },
  { requiredKeys: ['state', 'since'] },
);

describe('evaluateStatus: maintenance windows and recovery hysteresis', () => {
  const live = (nowMs: number) => beat(nowMs - S);
  const SETTLE: StatusSettings = { ...SETTINGS, downGraceMs: 15 * S, recoverySettleMs: 30 * S };

  it('a muted tunnel that goes down pages nothing in the window, and one tunnel.down after it if still down', () => {
    const muted = 10 * MIN;
    const run = sweepAt([
      { nowMs: 0, state: up(-MIN), heartbeat: live(0), mutedUntilMs: muted },
      { nowMs: MIN, state: down(MIN), mutedUntilMs: muted },
      { nowMs: 5 * MIN, state: down(MIN), mutedUntilMs: muted },
      { nowMs: muted - 1, state: down(MIN), mutedUntilMs: muted },
      { nowMs: muted, state: down(MIN), mutedUntilMs: muted },
      { nowMs: muted + MIN, state: down(MIN), mutedUntilMs: muted },
      {
        nowMs: muted + 2 * MIN,
        state: up(muted + 90 * S),
        heartbeat: live(muted + 2 * MIN),
        mutedUntilMs: muted,
      },
    ]);
    // Events are recorded as always; the page waits for the window's end.
    expect(run.events).toEqual([
      ['pending', 'up', -MIN],
      ['up', 'down', MIN],
      ['down', 'up', muted + 90 * S],
    ]);
    expect(run.alerts).toEqual([
      ['tunnel.down', muted],
      ['tunnel.up', muted + 2 * MIN],
    ]);
    // The down announced after the window is about the incident as it began.
    expect(run.views[4]?.alerts[0]?.id).toBe(`tun_aaaaaaaaaaaaaaaa:tunnel.down@${at(MIN)}`);
  });

  it('a muted tunnel back up within the window pages nothing at all', () => {
    const run = sweepAt([
      { nowMs: 0, state: up(-MIN), heartbeat: live(0), mutedUntilMs: 10 * MIN },
      { nowMs: MIN, state: down(MIN), mutedUntilMs: 10 * MIN },
      { nowMs: 5 * MIN, state: up(4 * MIN), heartbeat: live(5 * MIN), mutedUntilMs: 10 * MIN },
      { nowMs: 11 * MIN, state: up(4 * MIN), heartbeat: live(11 * MIN), mutedUntilMs: 10 * MIN },
    ]);
    expect(run.alerts).toEqual([]);
    expect(run.record?.incident).toBeUndefined();
  });

  it('muting an announced incident still sends its tunnel.up', () => {
    const run = sweepAt([
      { nowMs: 0, state: up(-MIN), heartbeat: live(0) },
      { nowMs: 3 * MIN, state: down(0) },
      { nowMs: 4 * MIN, state: down(0), mutedUntilMs: 60 * MIN },
      { nowMs: 5 * MIN, state: up(290 * S), heartbeat: live(5 * MIN), mutedUntilMs: 60 * MIN },
    ]);
    expect(run.alerts).toEqual([
      ['tunnel.down', 3 * MIN],
      ['tunnel.up', 5 * MIN],
    ]);
  });

  it('closes an announced incident only after the tunnel stayed up the settle time', () => {
    const run = sweepAt(
      [
        { nowMs: 0, state: up(-MIN), heartbeat: live(0) },
        { nowMs: 20 * S, state: down(S) },
        { nowMs: 40 * S, state: up(35 * S), heartbeat: live(40 * S) },
        { nowMs: 64 * S, state: up(35 * S), heartbeat: live(64 * S) },
        { nowMs: 65 * S, state: up(35 * S), heartbeat: live(65 * S) },
        { nowMs: 70 * S, state: up(35 * S), heartbeat: live(70 * S) },
      ],
      SETTLE,
    );
    expect(run.alerts).toEqual([
      ['tunnel.down', 20 * S],
      ['tunnel.up', 65 * S],
    ]);
    // The API shows up at once: only the page waits.
    expect(run.views[2]?.status.state).toBe('up');
    expect(run.record?.incident).toBeUndefined();
  });

  it('a tunnel flapping every 10 s around a 15 s grace for 2 minutes pages once, and resolves once it settles', () => {
    // Down 20 s (past the grace), up 10 s (within the settle time), over and over; a sweep a second.
    const steps: Parameters<typeof sweepAt>[0] = [{ nowMs: 0, state: up(-MIN), heartbeat: live(0) }];
    const phase = (ms: number) => {
      const cycle = Math.floor(ms / (30 * S));
      const inCycle = ms % (30 * S);
      return inCycle < 20 * S
        ? down(cycle * 30 * S, { connId: `c${cycle}` })
        : up(cycle * 30 * S + 20 * S, { connId: `u${cycle}` });
    };
    for (let ms = S; ms < 2 * MIN; ms += S) {
      const state = phase(ms);
      steps.push({ nowMs: ms, state, ...(state.state === 'up' ? { heartbeat: live(ms) } : {}) });
    }
    // Then the last up (since 110 s) holds.
    for (let ms = 2 * MIN; ms <= 3 * MIN; ms += S) {
      steps.push({ nowMs: ms, state: up(110 * S, { connId: 'u3' }), heartbeat: live(ms) });
    }
    const run = sweepAt(steps, SETTLE);
    expect(run.alerts).toEqual([
      ['tunnel.down', 15 * S],
      ['tunnel.up', 140 * S],
    ]);
    // Every flap is in the history all the same.
    expect(run.events.filter(([, to]) => to === 'down')).toHaveLength(4);
    expect(run.events.filter(([, to]) => to === 'up')).toHaveLength(5);
  });

  it.each<[string, number[]]>([
    ['down 10 s, up 10 s', [10, 10]],
    ['down 20 s, up 10 s', [20, 10]],
    ['down 10 s, up 10 s, down 20 s, up 10 s', [10, 10, 20, 10]],
    ['down 16 s, up 5 s, down 14 s, up 12 s', [16, 5, 14, 12]],
  ])('flapping for 2 minutes (%s) around a 15 s grace pages at most once', (_, pattern) => {
    const steps: Parameters<typeof sweepAt>[0] = [{ nowMs: 0, state: up(-MIN), heartbeat: live(0) }];
    // Phases from the pattern, repeated: [down, up, down, up, ...], each a new connection.
    const phases: { state: 'down' | 'up'; from: number }[] = [];
    for (let at = 0, i = 0; at < 2 * MIN; i++) {
      phases.push({ state: i % 2 === 0 ? 'down' : 'up', from: at });
      at += (pattern[i % pattern.length] ?? 10) * S;
    }
    for (let ms = S; ms < 2 * MIN; ms += S) {
      const index = phases.findLastIndex((p) => p.from <= ms);
      const phase = phases[index];
      if (!phase) continue;
      steps.push(
        phase.state === 'down'
          ? { nowMs: ms, state: down(phase.from, { connId: `c${index - 1}` }) }
          : { nowMs: ms, state: up(phase.from, { connId: `c${index}` }), heartbeat: live(ms) },
      );
    }
    const run = sweepAt(steps, SETTLE);
    const downs = run.alerts.filter(([type]) => type === 'tunnel.down');
    const ups = run.alerts.filter(([type]) => type === 'tunnel.up');
    expect(downs.length).toBeLessThanOrEqual(1);
    expect(ups.length).toBeLessThanOrEqual(downs.length);
  });

  it('without a settle time, the same flapping pages at every down past the grace', () => {
    const steps: Parameters<typeof sweepAt>[0] = [{ nowMs: 0, state: up(-MIN), heartbeat: live(0) }];
    for (let ms = S; ms < 2 * MIN; ms += S) {
      const cycle = Math.floor(ms / (30 * S));
      const isDown = ms % (30 * S) < 20 * S;
      steps.push(
        isDown
          ? { nowMs: ms, state: down(cycle * 30 * S, { connId: `c${cycle}` }) }
          : { nowMs: ms, state: up(cycle * 30 * S + 20 * S, { connId: `u${cycle}` }), heartbeat: live(ms) },
      );
    }
    const run = sweepAt(steps, { ...SETTLE, recoverySettleMs: 0 });
    expect(run.alerts.filter(([type]) => type === 'tunnel.down')).toHaveLength(4);
  });
});

describe('evaluateStatus: properties', () => {
  it('never sends two tunnel.down without a tunnel.up between, nor a tunnel.up without a down', () => {
    fc.assert(
      fc.property(timeline, (history) => {
        const types = play(history).alerts.map((a) => a.type);
        types.forEach((type, i) => {
          expect(type).toBe(i % 2 === 0 ? 'tunnel.down' : 'tunnel.up');
        });
      }),
      RUNS,
    );
  });

  it('sends tunnel.down only for a tunnel down for at least the grace, tunnel.up only for one up', () => {
    fc.assert(
      fc.property(timeline, (history) => {
        for (const alert of play(history).alerts) {
          if (alert.type === 'tunnel.down') {
            expect(alert.status).toBe('down');
            expect(T0 + alert.nowMs - Date.parse(alert.since)).toBeGreaterThanOrEqual(SETTINGS.downGraceMs);
          } else {
            expect(alert.status).toBe('up');
          }
        }
      }),
      RUNS,
    );
  });

  it('never alerts for outages shorter than the grace, however the sweeps fall', () => {
    // Up, then an outage (dropped connection or dead worker) that ends within the grace, repeated;
    // a dead worker's last beat can be one interval before it died, so allow for that.
    const maxOutage = SETTINGS.downGraceMs - SETTINGS.heartbeatIntervalMs - 1;
    const segment = fc.record({
      upMs: fc.integer({ min: 0, max: 10 * MIN }),
      outage: fc.constantFrom('drop', 'kill'),
      downMs: fc.integer({ min: 0, max: maxOutage }),
      sweepsUp: fc.array(fc.integer({ min: 0, max: 10 * MIN }), { maxLength: 4 }),
      sweepsDown: fc.array(fc.integer({ min: 0, max: maxOutage }), { maxLength: 4 }),
    });
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 8 }), (segments) => {
        const events: { t: number; step: Step }[] = [];
        let t = 0;
        let current: 'w1' | 'w2' = 'w1';
        events.push({ t, step: { kind: 'connect', worker: current } });
        for (const s of segments) {
          for (const o of s.sweepsUp) if (o < s.upMs) events.push({ t: t + o, step: { kind: 'sweep' } });
          t += s.upMs;
          events.push({
            t,
            step: s.outage === 'drop' ? { kind: 'drop' } : { kind: 'kill', worker: current },
          });
          for (const o of s.sweepsDown)
            if (o < s.downMs) events.push({ t: t + o + 1, step: { kind: 'sweep' } });
          t += s.downMs + 1;
          current = current === 'w1' ? 'w2' : 'w1';
          events.push({ t, step: { kind: 'connect', worker: current } });
        }
        events.push({ t: t + 1, step: { kind: 'sweep' } });
        events.sort((a, b) => a.t - b.t);
        let last = 0;
        const history = events.map((e) => {
          const gapMs = e.t - last;
          last = e.t;
          return { gapMs, step: e.step };
        });
        expect(play(history).alerts).toEqual([]);
      }),
      RUNS,
    );
  });

  it('alerts exactly once for an outage longer than the grace when sweeps are frequent', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10 * S, max: SETTINGS.downGraceMs }),
        fc.integer({ min: 0, max: 10 * MIN }),
        fc.constantFrom('drop', 'kill'),
        (every, extraMs, outage) => {
          const downFor = SETTINGS.downGraceMs + every + extraMs;
          const history: { gapMs: number; step: Step }[] = [
            { gapMs: 0, step: { kind: 'connect', worker: 'w1' } },
          ];
          history.push({
            gapMs: MIN,
            step: outage === 'drop' ? { kind: 'drop' } : { kind: 'kill', worker: 'w1' },
          });
          for (let t = 0; t < downFor; t += every)
            history.push({ gapMs: t === 0 ? 0 : every, step: { kind: 'sweep' } });
          history.push({ gapMs: every, step: { kind: 'connect', worker: 'w2' } });
          history.push({ gapMs: 1, step: { kind: 'sweep' } });
          expect(play(history).alerts.map((a) => a.type)).toEqual(['tunnel.down', 'tunnel.up']);
        },
      ),
      RUNS,
    );
  });

  it('pages customer_not_connected when the grace ends exactly as the reconnect window does', () => {
    const reconnectWindowMs = 3 * SETTINGS.keepaliveIntervalMs + SETTINGS.heartbeatIntervalMs;
    const view = evaluateStatus({
      tunnel: tunnel(),
      state: up(-10 * MIN),
      heartbeat: beat(-reconnectWindowMs),
      now: new Date(T0),
      settings: { ...SETTINGS, downGraceMs: reconnectWindowMs },
    });
    expect(view.status.since).toBe(at(-reconnectWindowMs));
    expect(view.alerts.map((a) => [a.body.type, a.body.status.error?.code])).toEqual([
      ['tunnel.down', 'customer_not_connected'],
    ]);
  });

  it('shows an up whose owner is dead, silent or restarted as down with worker_lost (until the reconnect window)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 60 * MIN }),
        fc.oneof(
          fc.integer({ min: STALE + 1, max: 60 * MIN }).map((age) => ({ kind: 'stale' as const, age })),
          fc.constant({ kind: 'missing' as const }),
          fc.constant({ kind: 'other' as const }),
          fc.integer({ min: 1, max: 10 * MIN }).map((after) => ({ kind: 'restarted' as const, after })),
        ),
        fc.option(StatusRecordArb, { nil: undefined }),
        (connectedAgo, failure, previous) => {
          const state = up(-connectedAgo);
          let heartbeat: WorkerHeartbeat | undefined;
          if (failure.kind === 'stale') heartbeat = beat(-failure.age, { startedAt: at(-connectedAgo - 1) });
          if (failure.kind === 'other') heartbeat = beat(-S, { workerId: 'w9' });
          if (failure.kind === 'restarted')
            heartbeat = beat(0, { startedAt: at(-connectedAgo + failure.after) });
          const view = evaluate({ state, heartbeat, previous });
          expect(view.status.state).toBe('down');
          // A reverse tunnel lost longer than a reconnect takes: no customer came back since.
          const lostForMs = T0 - Date.parse(view.status.since);
          const reconnectWindowMs = 3 * SETTINGS.keepaliveIntervalMs + SETTINGS.heartbeatIntervalMs;
          expect(view.status.error?.code).toBe(
            lostForMs >= reconnectWindowMs ? 'customer_not_connected' : 'worker_lost',
          );
          expect(view.connect).toBeNull();
        },
      ),
      RUNS,
    );
  });

  it('shows a disabled tunnel as disabled and never alerts tunnel.down for it', () => {
    fc.assert(
      fc.property(timeline, (history) => {
        for (const { input, output } of play(history).evaluations) {
          if (input.tunnel.enabled) continue;
          expect(output.status.state).toBe('disabled');
          expect(output.connect).toBeNull();
          expect(output.alerts.filter((a) => a.body.type === 'tunnel.down')).toEqual([]);
        }
      }),
      RUNS,
    );
  });

  it('is a fixed point: evaluated again over its own record, nothing changes and nothing is sent', () => {
    fc.assert(
      fc.property(timeline, (history) => {
        for (const { input, output } of play(history).evaluations) {
          const again = evaluateStatus({ ...input, previous: output.next ?? input.previous });
          expect(again.next).toBeUndefined();
          expect(again.transitions).toEqual([]);
          expect(again.alerts).toEqual([]);
          expect(again.status).toEqual(output.status);
        }
      }),
      RUNS,
    );
  });

  it('keeps a consistent history: each transition starts where the last ended, in time order', () => {
    fc.assert(
      fc.property(timeline, (history) => {
        const trace = play(history);
        let state = 'pending';
        let last = Number.NEGATIVE_INFINITY;
        for (const e of trace.events) {
          expect(e.from).toBe(state);
          expect(e.to).not.toBe(e.from);
          expect(Date.parse(e.at)).toBeGreaterThanOrEqual(last);
          state = e.to;
          last = Date.parse(e.at);
        }
        expect(trace.record?.state ?? 'pending').toBe(state);
      }),
      RUNS,
    );
  });

  it('gives connect exactly while up, at the tunnel port; records and alerts match their schemas', () => {
    fc.assert(
      fc.property(timeline, (history) => {
        for (const { output } of play(history).evaluations) {
          expect(output.connect === null).toBe(output.status.state !== 'up');
          if (output.connect) expect(output.connect).toEqual({ host: BIND, port: PORT });
          StatusSchema.strict().parse(output.status);
          if (output.next) StatusRecordSchema.strict().parse(output.next);
          for (const a of output.alerts) AlertSchema.strict().parse(a.body);
        }
      }),
      RUNS,
    );
  });

  it('does not change its inputs', () => {
    fc.assert(
      fc.property(timeline, (history) => {
        for (const { input } of play(history).evaluations) {
          const copy = structuredClone(input);
          evaluateStatus(input);
          expect(input).toEqual(copy);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('TunnelStateItemSchema', () => {
  it.each([
    ['a state the worker never writes', { state: 'pending', since: at(0) }],
    ['an unknown error code', { state: 'down', since: at(0), error: { ...lost, code: 'gremlins' } }],
    ['an error without a hint', { state: 'down', since: at(0), error: { code: lost.code, message: 'x' } }],
    ['no since', { state: 'up' }],
  ])('rejects %s', (_, item) => {
    expect(TunnelStateItemSchema.safeParse(item).success).toBe(false);
  });

  it('accepts what a worker writes', () => {
    const item = { state: 'down', since: at(0), lastSeenAt: at(-S), owner: 'w1', connId: 'c1', error: lost };
    expect(TunnelStateItemSchema.parse(item)).toEqual(item);
  });
});

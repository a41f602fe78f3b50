import { describe, expect, it } from 'vitest';
import { serviceTagOf } from '../../shared/command-tag';
import type { TunnelStateItem, WorkerHeartbeat } from '../../shared/gateway-items';
import { type Status, StatusSchema } from '../../shared/schemas';
import type { StatusSettings } from '../../shared/status';
import {
  type StatusViewInput,
  signalWarnings,
  tunnelStatusView,
  type WarningInput,
} from '../../shared/status-warnings';
import {
  CONTENTION_QUIET_MS,
  type LoginRefusedSignal,
  type TunnelSignals,
} from '../../shared/tunnel-signals';

const T0 = Date.parse('2026-01-03T00:00:00.000Z');
const at = (offsetMs: number) => new Date(T0 + offsetMs).toISOString();
const S = 1000;
const SERVICE = { host: 'db.internal', port: 5432 };
const TAG = serviceTagOf(SERVICE);
const OLD_TAG = serviceTagOf({ host: 'old-db.internal', port: 5432 });

const reverse = {
  id: 'tun_aaaaaaaaaaaaaaaa',
  name: 'orders-db',
  workspaceId: 'ws_1',
  type: 'reverse' as const,
  enabled: true,
  createdAt: at(-86_400 * S),
  updatedAt: at(-86_400 * S),
  port: 20001,
  service: SERVICE,
  publicKeyFingerprint: 'SHA256:tunnelkeyTUNNELKEYtunnelkeyTUNNELKEYtunnelk',
};
const standard = { ...reverse, type: 'standard' as const, ssh: { host: 'bastion.example.com', port: 2222 } };

const upState = (over: Partial<TunnelStateItem> = {}): TunnelStateItem => ({
  state: 'up',
  since: at(-60 * S),
  lastSeenAt: at(-60 * S),
  owner: 'wk_1',
  connId: 'c_1',
  connectedAt: at(-60 * S),
  commandTag: TAG,
  ...over,
});
const upStatus: Status = { state: 'up', since: at(-60 * S) };
const downStatus: Status = {
  state: 'down',
  since: at(-10 * S),
  error: { code: 'customer_not_connected', message: 'gone', hint: 'run it' },
};

const refusal = (over: Partial<LoginRefusedSignal> = {}): LoginRefusedSignal => ({
  since: at(-5 * S),
  at: at(-5 * S),
  kind: 'wrong_key',
  reason: "key is not the tunnel's key",
  source: '203.0.113.7',
  method: 'publickey',
  keyFingerprint: 'SHA256:strangerSTRANGERstrangerSTRANGERstrangerSTR',
  ...over,
});

const input = (over: Partial<WarningInput> = {}): WarningInput => ({
  tunnel: reverse,
  state: upState(),
  status: upStatus,
  now: new Date(T0),
  ...over,
});
const codes = (over: Partial<WarningInput>) => signalWarnings(input(over)).map((w) => w.code);

describe('signalWarnings', () => {
  it('has nothing to say of an up tunnel running the current command with no signals', () => {
    expect(signalWarnings(input())).toEqual([]);
    expect(signalWarnings(input({ signals: {} }))).toEqual([]);
  });

  describe('login_refused', () => {
    it('names the offered key, the source and the reason, since the first refusal of the kind', () => {
      const [warning] = signalWarnings(input({ signals: { loginRefused: refusal({ since: at(-50 * S) }) } }));
      expect(warning?.code).toBe('login_refused');
      expect(warning?.message).toContain("key is not the tunnel's key");
      expect(warning?.message).toContain('SHA256:strangerSTRANGERstrangerSTRANGERstrangerSTR');
      expect(warning?.message).toContain('203.0.113.7');
      expect(warning?.message).toContain(`refused alike since ${at(-50 * S)}`);
      expect(warning?.hint).toContain(reverse.publicKeyFingerprint);
      expect(warning?.hint).toContain(`~/.ssh/tunnelkeeper_${reverse.id}`);
      expect(warning?.since).toBe(at(-50 * S));
    });

    it.each([
      ['bad_signature', /signature did not verify/],
      ['method', /Only public-key authentication/],
      ['disabled', /enable it/],
      ['too_many_sessions', /another copy/],
    ] as const)('hints at the fix for a %s refusal', (kind, hint) => {
      const [warning] = signalWarnings(
        input({ signals: { loginRefused: refusal({ kind, keyFingerprint: undefined }) } }),
      );
      expect(warning?.hint).toMatch(hint);
      expect(warning?.message).not.toContain('key SHA256');
    });

    it('shows while the session up is older than the refusal, and down, and clears with a later login', () => {
      const loginRefused = refusal({ at: at(-5 * S) });
      expect(codes({ signals: { loginRefused } })).toEqual(['login_refused']);
      expect(codes({ signals: { loginRefused }, state: undefined, status: downStatus })).toEqual([
        'login_refused',
      ]);
      const later = upState({ connectedAt: at(-4 * S), since: at(-4 * S) });
      expect(codes({ signals: { loginRefused }, state: later })).toEqual([]);
      // A down written by the session that logged in after the refusal: that login succeeded.
      const downLater: TunnelStateItem = { ...later, state: 'down', since: at(-1 * S) };
      expect(codes({ signals: { loginRefused }, state: downLater, status: downStatus })).toEqual([]);
    });
  });

  describe('session_contention', () => {
    const contention = (lastAtMs: number) => ({
      since: at(-90 * S),
      lastAt: at(lastAtMs),
      takeovers: 9,
      sources: ['192.0.2.10', '192.0.2.11'],
    });

    it('names the takeovers and the sources while they go on', () => {
      const [warning] = signalWarnings(input({ signals: { contention: contention(-1 * S) } }));
      expect(warning?.code).toBe('session_contention');
      expect(warning?.message).toContain('9 takeovers within a minute');
      expect(warning?.message).toContain('192.0.2.10, 192.0.2.11');
      expect(warning?.hint).toMatch(/stop the others/);
      expect(warning?.since).toBe(at(-90 * S));
    });

    it('clears after a quiet window without a takeover', () => {
      expect(codes({ signals: { contention: contention(-CONTENTION_QUIET_MS + 1) } })).toEqual([
        'session_contention',
      ]);
      expect(codes({ signals: { contention: contention(-CONTENTION_QUIET_MS) } })).toEqual([]);
    });
  });

  describe('command_outdated', () => {
    const changed = { ...reverse, serviceChangedAt: at(-30 * S) };

    it('warns while the session runs a command tagged for another service, since the later of change and login', () => {
      const [warning] = signalWarnings(input({ tunnel: changed, state: upState({ commandTag: OLD_TAG }) }));
      expect(warning?.code).toBe('command_outdated');
      expect(warning?.message).toContain(OLD_TAG);
      expect(warning?.message).toContain(TAG);
      expect(warning?.message).toContain('db.internal:5432');
      expect(warning?.hint).toMatch(/-R carries only the listen side/);
      expect(warning?.since).toBe(at(-30 * S));
      const loggedInLater = upState({ commandTag: OLD_TAG, connectedAt: at(-10 * S) });
      expect(signalWarnings(input({ tunnel: changed, state: loggedInLater }))[0]?.since).toBe(at(-10 * S));
    });

    it('clears when the session runs the current command', () => {
      expect(codes({ tunnel: changed, state: upState({ commandTag: TAG }) })).toEqual([]);
    });

    it('counts an untagged session as outdated only once the service was changed', () => {
      expect(codes({ state: upState({ commandTag: undefined }) })).toEqual([]);
      const [warning] = signalWarnings(input({ tunnel: changed, state: upState({ commandTag: undefined }) }));
      expect(warning?.code).toBe('command_outdated');
      expect(warning?.message).toContain('without a service tag');
    });

    it('says nothing while no session is up, nor for standard tunnels', () => {
      const state = upState({ commandTag: OLD_TAG });
      expect(codes({ tunnel: changed, state: { ...state, state: 'down' }, status: downStatus })).toEqual([]);
      expect(codes({ tunnel: { ...standard, serviceChangedAt: at(-30 * S) }, state })).toEqual([]);
    });
  });

  describe('service_unreachable', () => {
    const failing: TunnelSignals = {
      service: { reachable: false, since: at(-20 * S), message: 'Connection refused' },
    };

    it("says the customer's client could not reach the service of an up reverse tunnel", () => {
      const [warning] = signalWarnings(input({ signals: failing }));
      expect(warning).toMatchObject({ code: 'service_unreachable', since: at(-20 * S) });
      expect(warning?.message).toContain("the customer's ssh could not connect");
      expect(warning?.message).toContain('Connection refused');
      expect(warning?.hint).toContain('db.internal:5432');
    });

    it('says the bastion could not reach the service of an up standard tunnel', () => {
      const [warning] = signalWarnings(input({ tunnel: standard, state: upState(), signals: failing }));
      expect(warning?.message).toContain(
        'the bastion at bastion.example.com:2222 could not connect to db.internal:5432',
      );
    });

    it('clears with a connection that got through, and says nothing while down', () => {
      expect(codes({ signals: { service: { reachable: true, since: at(-1 * S) } } })).toEqual([]);
      expect(codes({ signals: failing, status: downStatus })).toEqual([]);
    });
  });

  it('says nothing of a disabled tunnel, and orders the others login, contention, command, service', () => {
    const signals: TunnelSignals = {
      loginRefused: refusal(),
      contention: { since: at(-9 * S), lastAt: at(-1 * S), takeovers: 5, sources: ['192.0.2.1'] },
      service: { reachable: false, since: at(-3 * S) },
    };
    const tunnel = { ...reverse, serviceChangedAt: at(-30 * S) };
    const state = upState({ commandTag: OLD_TAG });
    expect(codes({ tunnel, state, signals })).toEqual([
      'login_refused',
      'session_contention',
      'command_outdated',
      'service_unreachable',
    ]);
    expect(codes({ tunnel, state, signals, status: { state: 'disabled', since: at(0) } })).toEqual([]);
  });
});

describe('tunnelStatusView', () => {
  const SETTINGS: StatusSettings = {
    heartbeatIntervalMs: 15 * S,
    keepaliveIntervalMs: 15 * S,
    downGraceMs: 120 * S,
    bindHost: '10.0.0.1',
  };
  const heartbeat: WorkerHeartbeat = {
    workerId: 'wk_1',
    lastBeatAt: at(-1 * S),
    startedAt: at(-3_600 * S),
    address: '10.0.0.1',
    version: 'test',
    counts: { reverse: 1, standard: 0 },
  };
  const view = (over: Partial<StatusViewInput> = {}) =>
    tunnelStatusView({
      tunnel: reverse,
      state: upState(),
      heartbeat,
      now: new Date(T0),
      settings: SETTINGS,
      ...over,
    });

  it('adds the warnings to the status the machine evaluated, and none when there are none', () => {
    const plain = view();
    expect(plain.status.state).toBe('up');
    expect(plain.status).not.toHaveProperty('warnings');
    const warned = view({ signals: { loginRefused: refusal() } });
    expect(warned.status.warnings?.map((w) => w.code)).toEqual(['login_refused']);
    expect(warned.connect).toEqual({ host: '10.0.0.1', port: 20001 });
    expect(StatusSchema.strict().parse(warned.status)).toEqual(warned.status);
  });

  it('costs an unreadable SIGNALS item only its warnings, and says so', () => {
    const result = view({
      unreadable: [{ id: reverse.id, item: 'SIGNALS', reason: 'service: expected object' }],
    });
    expect(result.status.state).toBe('up');
    expect(result.connect).not.toBeNull();
    expect(result.status.warnings).toHaveLength(1);
    expect(result.status.warnings?.[0]).toMatchObject({ code: 'status_unreadable' });
    expect(result.status.warnings?.[0]?.message).toMatch(/SIGNALS.*not shown/);
  });

  it('keeps the signals warnings next to the one an unreadable STATE item gives', () => {
    const result = view({
      state: undefined,
      signals: { loginRefused: refusal() },
      unreadable: [{ id: reverse.id, item: 'STATE', reason: 'state: invalid' }],
    });
    expect(result.status.warnings?.map((w) => w.code)).toEqual(['login_refused', 'status_unreadable']);
  });
});

import { describe, expect, it } from 'vitest';
import { connectorSlots, connectorsWarning, representativeState } from '../../shared/connectors';
import type { TunnelStateItem, WorkerHeartbeat } from '../../shared/gateway-items';
import {
  evaluateStatus,
  type StatusInput,
  type StatusSettings,
  type StatusTunnel,
} from '../../shared/status';
import type { StatusRecord } from '../../shared/status-items';

const T0 = Date.parse('2026-01-03T00:00:00.000Z');
const at = (offsetMs: number) => new Date(T0 + offsetMs).toISOString();
const S = 1000;
const SETTINGS: StatusSettings = {
  heartbeatIntervalMs: 15 * S,
  keepaliveIntervalMs: 15 * S,
  downGraceMs: 120 * S,
  bindHost: '127.0.0.1',
};
const CN = 'cn_bbbbbbbbbbbb';

const tunnel = (over: Partial<StatusTunnel> = {}): StatusTunnel => ({
  id: 'tun_aaaaaaaaaaaaaaaa',
  name: 'ha',
  workspaceId: 'ws_1',
  type: 'reverse',
  enabled: true,
  createdAt: at(-3600 * S),
  updatedAt: at(-3600 * S),
  port: 20001,
  publicKey: 'ssh-ed25519 AAAA primary',
  publicKeyFingerprint: 'SHA256:primary',
  expectedConnectors: 2,
  connectors: [
    {
      id: CN,
      publicKey: 'ssh-ed25519 AAAA second',
      publicKeyFingerprint: 'SHA256:second',
      createdAt: at(-3600 * S),
    },
  ],
  ...over,
});
const up = (sinceMs: number, owner: string, connId: string): TunnelStateItem => ({
  state: 'up',
  since: at(sinceMs),
  owner,
  connId,
  connectedAt: at(sinceMs),
  connectHost: `host-of-${owner}`,
});
const down = (sinceMs: number, owner: string, connId: string): TunnelStateItem => ({
  state: 'down',
  since: at(sinceMs),
  owner,
  connId,
  connectedAt: at(sinceMs - 10 * S),
  error: { code: 'customer_not_connected', message: 'ended', hint: 'run it' },
});
const beat = (workerId: string, lastBeatMs: number): WorkerHeartbeat => ({
  workerId,
  lastBeatAt: at(lastBeatMs),
  startedAt: at(-7200 * S),
  address: '127.0.0.1',
  version: 'test',
  counts: { reverse: 1, standard: 0 },
});
const beats = (nowMs: number, ...workers: string[]) => new Map(workers.map((w) => [w, beat(w, nowMs - S)]));

function evaluate(nowMs: number, over: Partial<StatusInput>) {
  return evaluateStatus({ tunnel: tunnel(), now: new Date(T0 + nowMs), settings: SETTINGS, ...over });
}

/** The record a sweep persisted after `input`: the next evaluation's `previous`. */
function persisted(nowMs: number, over: Partial<StatusInput>): StatusRecord {
  const next = evaluate(nowMs, over).next;
  if (!next) throw new Error('nothing to persist');
  return next;
}

describe('connectors of a reverse tunnel', () => {
  it('lists the primary connector first, then the others; none for the primary once removed', () => {
    expect(connectorSlots({ ...tunnel(), id: 'tun_x', createdAt: at(0) } as never).map((s) => s.id)).toEqual([
      'primary',
      CN,
    ]);
    expect(
      connectorSlots({
        ...tunnel(),
        id: 'tun_x',
        createdAt: at(0),
        isPrimaryConnectorRemoved: true,
      } as never).map((s) => s.id),
    ).toEqual([CN]);
  });

  it('is up with 2 of 2 live, connect through the oldest connection', () => {
    const view = evaluate(60 * S, {
      state: up(0, 'w1', 'c1'),
      connectorStates: { [CN]: up(10 * S, 'w2', 'c2') },
      heartbeats: beats(60 * S, 'w1', 'w2'),
    });
    expect(view.status.state).toBe('up');
    expect(view.status.connectors).toEqual({ live: 2, expected: 2 });
    expect(view.connect).toEqual({ host: 'host-of-w1', port: 20001 });
    expect(view.connectors && connectorsWarning(view.connectors, new Date(T0))).toBeUndefined();
  });

  it('stays up without a transition when the connector it followed ends while another carries; warns who is missing', () => {
    const first = { state: up(0, 'w1', 'c1'), connectorStates: { [CN]: up(10 * S, 'w2', 'c2') } };
    const previous = persisted(60 * S, { ...first, heartbeats: beats(60 * S, 'w1', 'w2') });
    const view = evaluate(90 * S, {
      previous,
      state: down(80 * S, 'w1', 'c1'),
      connectorStates: { [CN]: up(10 * S, 'w2', 'c2') },
      heartbeats: beats(90 * S, 'w2'),
    });
    expect(view.status.state).toBe('up');
    expect(view.status.since).toBe(previous.since);
    expect(view.transitions).toEqual([]);
    expect(view.alerts).toEqual([]);
    expect(view.status.connectors).toEqual({ live: 1, expected: 2 });
    const warning = view.connectors && connectorsWarning(view.connectors, new Date(T0 + 90 * S));
    expect(warning?.code).toBe('connectors_missing');
    expect(warning?.message).toContain('1 of 2');
    expect(warning?.message).toContain('primary (key SHA256:primary) (down since');
    expect(warning?.since).toBe(at(80 * S));
  });

  it('counts a connector whose gateway stopped heartbeating as missing, and stays up through the other', () => {
    const view = evaluate(200 * S, {
      state: up(0, 'w1', 'c1'),
      connectorStates: { [CN]: up(10 * S, 'w2', 'c2') },
      heartbeats: new Map([
        ['w1', beat('w1', 100 * S)],
        ['w2', beat('w2', 199 * S)],
      ]),
    });
    expect(view.status.state).toBe('up');
    expect(view.status.connectors).toEqual({ live: 1, expected: 2 });
    expect(view.connect?.host).toBe('host-of-w2');
  });

  it('records the down the sweeps missed when the other connector came up only after the first ended', () => {
    const previous = persisted(60 * S, {
      state: up(0, 'w1', 'c1'),
      heartbeats: beats(60 * S, 'w1'),
    });
    const view = evaluate(120 * S, {
      previous,
      state: { ...down(80 * S, 'w1', 'c1'), lastDown: { since: at(80 * S), connId: 'c1' } },
      connectorStates: { [CN]: up(100 * S, 'w2', 'c2') },
      heartbeats: beats(120 * S, 'w2'),
    });
    expect(view.status.state).toBe('up');
    expect(view.transitions.map((t) => [t.from, t.to, t.at])).toEqual([
      ['up', 'down', at(80 * S)],
      ['down', 'up', at(100 * S)],
    ]);
    expect(view.alerts).toEqual([]);
  });

  it('is down when every connector is, since the last one ended, and alerts once after the grace', () => {
    const previous = persisted(60 * S, {
      state: up(0, 'w1', 'c1'),
      connectorStates: { [CN]: up(10 * S, 'w2', 'c2') },
      heartbeats: beats(60 * S, 'w1', 'w2'),
    });
    const allDown = { state: down(70 * S, 'w1', 'c1'), connectorStates: { [CN]: down(75 * S, 'w2', 'c2') } };
    const first = evaluate(80 * S, { previous, ...allDown });
    expect(first.status.state).toBe('down');
    expect(first.status.since).toBe(at(75 * S));
    expect(first.status.connectors).toEqual({ live: 0, expected: 2 });
    expect(first.alerts).toEqual([]);
    const recorded = first.next;
    if (!recorded) throw new Error('no record');
    const later = evaluate(75 * S + SETTINGS.downGraceMs, { previous: recorded, ...allDown });
    expect(later.alerts.map((a) => a.body.type)).toEqual(['tunnel.down']);
  });

  it('keeps one connector tunnels exactly as before (no connectors field)', () => {
    const view = evaluateStatus({
      tunnel: tunnel({ expectedConnectors: undefined, connectors: undefined }),
      state: up(0, 'w1', 'c1'),
      heartbeat: beat('w1', 59 * S),
      now: new Date(T0 + 60 * S),
      settings: SETTINGS,
    });
    expect(view.status).toEqual({ state: 'up', since: at(0) });
  });

  it('follows the same connection from one evaluation to the next while it stays live', () => {
    const states = {
      tunnel: tunnel(),
      primary: up(20 * S, 'w1', 'c1'),
      others: { [CN]: up(10 * S, 'w2', 'c2') },
      heartbeats: beats(60 * S, 'w1', 'w2'),
      view: { now: new Date(T0 + 60 * S) },
      settings: SETTINGS,
    };
    const tunnelOf = { ...states.tunnel, publicKey: 'k', publicKeyFingerprint: 'f' };
    expect(representativeState({ ...states, tunnel: tunnelOf }).state?.connId).toBe('c2');
    expect(
      representativeState({
        ...states,
        tunnel: tunnelOf,
        previousSource: { state: 'up', since: at(20 * S), connId: 'c1' },
      }).state?.connId,
    ).toBe('c1');
  });
});

import { describe, expect, it } from 'vitest';
import type { StatusSettings, StatusTunnel } from '../../shared/status';
import type { OutboxAlert, StatusRecord } from '../../shared/status-items';
import { statusWakeAt } from '../../shared/status-wake';

const S = 1000;
const T0 = Date.parse('2026-01-03T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const settings: StatusSettings = {
  heartbeatIntervalMs: 5 * S,
  keepaliveIntervalMs: 10 * S,
  downGraceMs: 60 * S,
  recoverySettleMs: 30 * S,
  bindHost: '127.0.0.1',
};
const reverse: Pick<StatusTunnel, 'type' | 'alerts'> = { type: 'reverse' };
const wake = (
  record: StatusRecord | undefined,
  outbox: OutboxAlert[] = [],
  tunnel: Pick<StatusTunnel, 'type' | 'alerts'> = reverse,
) => statusWakeAt({ tunnel, record, outbox, settings });
const down = (extra: Partial<StatusRecord> = {}): StatusRecord => ({
  state: 'down',
  since: iso(T0),
  incident: { since: iso(T0), alerted: false },
  ...extra,
});
const alert = (sinks: OutboxAlert['sinks'], claim?: OutboxAlert['claim']): OutboxAlert => ({
  id: 'tun_1:tunnel.down@x',
  body: {
    type: 'tunnel.down',
    tunnel: { id: 'tun_1', name: 'a', workspaceId: 'ws' },
    status: { state: 'down', since: iso(T0) },
    at: iso(T0),
  },
  createdAt: iso(T0),
  deadline: T0 + 3_600 * S,
  rev: 0,
  sinks,
  ...(claim ? { claim } : {}),
});

describe('statusWakeAt', () => {
  it('has nothing to wait for in a steady state', () => {
    expect(wake(undefined)).toBeUndefined();
    expect(wake({ state: 'pending', since: iso(T0) })).toBeUndefined();
    expect(wake({ state: 'up', since: iso(T0) })).toBeUndefined();
    expect(wake(down({ incident: { since: iso(T0), alerted: true } }))).toBeUndefined();
    expect(wake({ state: 'disabled', since: iso(T0) })).toBeUndefined();
  });

  it('wakes when an unannounced incident’s grace ends, or its maintenance window if later', () => {
    expect(wake(down())).toBe(T0 + 60 * S);
    expect(wake(down(), [], { ...reverse, alerts: { mutedUntil: iso(T0 + 600 * S) } })).toBe(T0 + 600 * S);
  });

  it('wakes when a reverse tunnel lost with its worker is past the reconnect window', () => {
    const lost = down({
      incident: { since: iso(T0), alerted: true },
      error: { code: 'worker_lost', message: 'm', hint: 'h' },
    });
    expect(wake(lost)).toBe(T0 + 35 * S);
    expect(wake(lost, [], { type: 'standard' })).toBeUndefined();
  });

  it('wakes when a recovery has settled', () => {
    expect(wake({ state: 'up', since: iso(T0), incident: { since: iso(T0 - S), alerted: true } })).toBe(
      T0 + 30 * S,
    );
  });

  it('wakes for the outbox: the next attempt, a lapsed claim, the earliest of all', () => {
    const up: StatusRecord = { state: 'up', since: iso(T0) };
    expect(wake(up, [alert({ a: { state: 'pending', attempts: 1, nextAttemptAt: T0 + 90 * S } })])).toBe(
      T0 + 90 * S,
    );
    expect(wake(up, [alert({ a: { state: 'pending', attempts: 0 } })])).toBe(0);
    expect(
      wake(up, [alert({ a: { state: 'pending', attempts: 0 } }, { by: 'x', until: T0 + 120 * S })]),
    ).toBe(T0 + 120 * S);
    expect(wake(down(), [alert({ a: { state: 'pending', attempts: 1, nextAttemptAt: T0 + 90 * S } })])).toBe(
      T0 + 60 * S,
    );
  });
});

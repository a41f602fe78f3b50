/**
 * What the gateway writes of its tunnels' signals: only changes, so steady traffic, a wrong key
 * retried by autossh, or a long service outage cost a write when something changes.
 */
import { describe, expect, it } from 'vitest';
import { GatewaySignals, type LoginRefusal } from '../../../fargate/signals/gateway-signals';
import {
  refusedByBastion,
  refusedByCustomerClient,
  reportingOutcomes,
} from '../../../fargate/signals/service-outcome';
import { TunnelFailure } from '../../../fargate/standard/bastion-connection';
import { forwardDenied, serviceUnreachableFromBastion } from '../../../shared/status-errors';
import {
  CONTENTION_QUIET_MS,
  CONTENTION_REFRESH_MS,
  CONTENTION_TAKEOVERS,
  CONTENTION_WINDOW_MS,
  LOGIN_REFUSAL_REFRESH_MS,
  MAX_SIGNAL_TEXT,
  type TunnelSignals,
} from '../../../shared/tunnel-signals';

const T0 = Date.parse('2026-01-03T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

function harness(maxTunnels = 100) {
  let now = T0;
  const writes: { tunnelId: string; signals: TunnelSignals }[] = [];
  const signals = new GatewaySignals({
    write: (tunnelId, s) => writes.push({ tunnelId, signals: s }),
    now: () => new Date(now),
    maxTunnels,
  });
  return {
    signals,
    writes,
    advance: (ms: number) => {
      now += ms;
    },
    now: () => now,
  };
}

const wrongKey: LoginRefusal = {
  kind: 'wrong_key',
  reason: "key is not the tunnel's key",
  source: '192.0.2.9',
  method: 'publickey',
  keyFingerprint: 'SHA256:stranger',
};

describe('GatewaySignals', () => {
  it('records a refused login once, again only now and then while it repeats, and afresh after a success', () => {
    const h = harness();
    h.signals.loginRefused('t1', wrongKey);
    expect(h.writes).toEqual([
      {
        tunnelId: 't1',
        signals: {
          loginRefused: {
            since: iso(T0),
            at: iso(T0),
            kind: 'wrong_key',
            reason: "key is not the tunnel's key",
            source: '192.0.2.9',
            method: 'publickey',
            keyFingerprint: 'SHA256:stranger',
          },
        },
      },
    ]);
    // autossh retrying the same wrong key every few seconds: no write...
    for (let i = 0; i < 20; i++) {
      h.advance(10_000);
      h.signals.loginRefused('t1', wrongKey);
    }
    expect(h.writes).toHaveLength(1);
    // ...until the refresh: the same streak, recorded again (so another gateway's success cannot hide it for long).
    h.advance(LOGIN_REFUSAL_REFRESH_MS);
    h.signals.loginRefused('t1', wrongKey);
    expect(h.writes).toHaveLength(2);
    expect(h.writes[1]?.signals.loginRefused).toMatchObject({ since: iso(T0), at: iso(h.now()) });
    // Another key is another refusal.
    h.signals.loginRefused('t1', { ...wrongKey, keyFingerprint: 'SHA256:other' });
    expect(h.writes[2]?.signals.loginRefused).toMatchObject({
      since: iso(h.now()),
      keyFingerprint: 'SHA256:other',
    });
    // A success in between: the same refusal afterwards is news.
    h.signals.loginSucceeded('t1');
    h.advance(1_000);
    h.signals.loginRefused('t1', { ...wrongKey, keyFingerprint: 'SHA256:other' });
    expect(h.writes).toHaveLength(4);
    expect(h.writes[3]?.signals.loginRefused?.since).toBe(iso(h.now()));
  });

  it('records contention once takeovers pass the threshold, then only on new sources or now and then, with a new episode after quiet', () => {
    const h = harness();
    const fight = (n: number, sources: [string, string] = ['192.0.2.1', '192.0.2.2']) => {
      for (let i = 0; i < n; i++) {
        h.advance(500);
        h.signals.takeover('t1', sources[i % 2] ?? '', sources[(i + 1) % 2] ?? '');
      }
    };
    fight(CONTENTION_TAKEOVERS - 1);
    expect(h.writes).toEqual([]); // a reconnect or two is no contention
    fight(1);
    const since = h.now();
    expect(h.writes).toHaveLength(1);
    expect(h.writes[0]?.signals.contention).toEqual({
      since: iso(since),
      lastAt: iso(since),
      takeovers: CONTENTION_TAKEOVERS,
      sources: ['192.0.2.2', '192.0.2.1'], // the newest login's first
    });
    fight(10);
    expect(h.writes).toHaveLength(1);
    h.advance(500);
    h.signals.takeover('t1', '192.0.2.2', '192.0.2.3'); // a third host joins the fight
    expect(h.writes).toHaveLength(2);
    expect(h.writes[1]?.signals.contention?.sources).toEqual(['192.0.2.3', '192.0.2.2', '192.0.2.1']);
    h.advance(CONTENTION_REFRESH_MS);
    fight(1, ['192.0.2.3', '192.0.2.2']);
    expect(h.writes).toHaveLength(3);
    expect(h.writes[2]?.signals.contention).toMatchObject({ since: iso(since), lastAt: iso(h.now()) });
    // Quiet for longer than the warning lasts: the next fight is a new one.
    h.advance(CONTENTION_QUIET_MS + CONTENTION_WINDOW_MS);
    fight(CONTENTION_TAKEOVERS);
    expect(h.writes).toHaveLength(4);
    expect(h.writes[3]?.signals.contention).toMatchObject({
      since: iso(h.now()),
      takeovers: CONTENTION_TAKEOVERS,
    });
  });

  it('never counts takeovers spread wider than the window as contention', () => {
    const h = harness();
    for (let i = 0; i < 50; i++) {
      h.advance(CONTENTION_WINDOW_MS / (CONTENTION_TAKEOVERS - 1));
      h.signals.takeover('t1', '192.0.2.1', '192.0.2.1');
    }
    expect(h.writes).toEqual([]);
  });

  it("records the service's reachability when it changes, keeping since across repeats", () => {
    const h = harness();
    h.signals.serviceOutcome('t1', { reachable: true });
    h.signals.serviceOutcome('t1', { reachable: true });
    h.advance(1_000);
    h.signals.serviceOutcome('t1', { reachable: false, message: 'Connection refused' });
    const failedAt = h.now();
    h.advance(1_000);
    h.signals.serviceOutcome('t1', { reachable: false, message: 'Connection refused' });
    h.advance(1_000);
    h.signals.serviceOutcome('t1', { reachable: false, message: 'No route to host' });
    h.advance(1_000);
    h.signals.serviceOutcome('t1', { reachable: true });
    expect(h.writes.map((w) => w.signals.service)).toEqual([
      { reachable: true, since: iso(T0) },
      { reachable: false, since: iso(failedAt), message: 'Connection refused' },
      { reachable: false, since: iso(failedAt), message: 'No route to host' },
      { reachable: true, since: iso(h.now()) },
    ]);
  });

  it('bounds what it remembers, and clips text from the client', () => {
    const h = harness(2);
    for (const id of ['t1', 't2', 't3', 't1']) h.signals.serviceOutcome(id, { reachable: true });
    // t1 was forgotten for t3: its next outcome is written again (one write, not a leak).
    expect(h.writes.map((w) => w.tunnelId)).toEqual(['t1', 't2', 't3', 't1']);
    h.signals.serviceOutcome('t4', { reachable: false, message: 'x'.repeat(10_000) });
    expect(h.writes.at(-1)?.signals.service?.message).toHaveLength(MAX_SIGNAL_TEXT);
  });
});

describe('service outcomes of channel opens', () => {
  const channel = { destroy() {} } as unknown as Awaited<ReturnType<Parameters<typeof reportingOutcomes>[0]>>;
  const sshOpenFailure = (reason: number, text: string) =>
    Object.assign(new Error(`(SSH) Channel open failure: ${text}`), { reason });

  it('tells a channel that opened as reachable, and a "connect failed" as unreachable with its text', async () => {
    const outcomes: unknown[] = [];
    const opens = [Promise.resolve(channel), Promise.reject(sshOpenFailure(2, 'Connection refused'))];
    const opener = reportingOutcomes(
      () => opens.shift() ?? Promise.reject(new Error('no more')),
      refusedByCustomerClient,
      (o) => outcomes.push(o),
    );
    await expect(opener({ ip: '127.0.0.1', port: 1 })).resolves.toBe(channel);
    await expect(opener({ ip: '127.0.0.1', port: 1 })).rejects.toThrow('Connection refused');
    expect(outcomes).toEqual([{ reachable: true }, { reachable: false, message: 'Connection refused' }]);
  });

  it('says nothing of the service for failures that are not its own', () => {
    expect(refusedByCustomerClient(sshOpenFailure(1, 'administratively prohibited'))).toBeUndefined();
    expect(refusedByCustomerClient(new Error('No response from server'))).toBeUndefined();
    expect(refusedByCustomerClient('not an error')).toBeUndefined();
    const denied = new TunnelFailure(forwardDenied('bastion:22', 'db:5432'));
    expect(refusedByBastion(denied)).toBeUndefined();
    const down = new TunnelFailure(
      serviceUnreachableFromBastion('bastion:22', 'db:5432', 'Connection refused'),
      {
        cause: sshOpenFailure(2, 'Connection refused'),
      },
    );
    expect(refusedByBastion(down)).toBe('Connection refused');
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TunnelEvent, TunnelStateName } from '../../shared/schemas';
import {
  MAX_SPANS,
  newLedger,
  recordTransitions,
  UPTIME_WINDOWS,
  type UptimeLedger,
  uptimeOf,
} from '../../shared/uptime';

const T0 = Date.parse('2026-02-01T00:00:00.000Z');
const H = 3_600_000;
const D = 24 * H;
const iso = (ms: number) => new Date(ms).toISOString();

/** Replays states `[atMs, state]` (the first is where the tunnel was created) through the ledger. */
function replay(steps: [number, TunnelStateName][], nowMs: number) {
  const [created, ...rest] = steps;
  if (!created) throw new Error('no steps');
  let ledger: UptimeLedger = newLedger(iso(created[0]));
  let current = { state: created[1], since: iso(created[0]) };
  for (const [at, state] of rest) {
    const event: TunnelEvent = { at: iso(at), from: current.state, to: state };
    ledger = recordTransitions(ledger, current, [event], new Date(at));
    current = { state, since: iso(at) };
  }
  return { ledger, current, uptime: uptimeOf(ledger, current, new Date(nowMs)) };
}

/** The same figure by brute force over the steps: up / (up + down) inside the window. */
function bruteForce(steps: [number, TunnelStateName][], nowMs: number, windowMs: number): number | null {
  let up = 0;
  let down = 0;
  steps.forEach(([at, state], i) => {
    const end = steps[i + 1]?.[0] ?? nowMs;
    const overlap = Math.min(end, nowMs) - Math.max(at, nowMs - windowMs);
    if (overlap <= 0) return;
    if (state === 'up') up += overlap;
    if (state === 'down') down += overlap;
  });
  return up + down === 0 ? null : up / (up + down);
}

describe('uptime', () => {
  it('counts only time expected up: pending and disabled are left out', () => {
    const { uptime } = replay(
      [
        [T0, 'pending'],
        [T0 + 2 * H, 'up'], // pending 2 h: not counted
        [T0 + 10 * H, 'down'],
        [T0 + 11 * H, 'up'],
        [T0 + 12 * H, 'disabled'],
        [T0 + 14 * H, 'up'],
      ],
      T0 + 20 * H,
    );
    // Counted: 8 h up + 1 h down + 1 h up + 6 h up = 16 h, 1 h of it down.
    expect(uptime['24h']).toBeCloseTo(15 / 16, 6);
    expect(uptime['7d']).toBe(uptime['24h']);
    expect(uptime['30d']).toBe(uptime['24h']);
  });

  it('is null while nothing counted: a pending tunnel, a tunnel disabled the whole window', () => {
    expect(replay([[T0, 'pending']], T0 + H).uptime).toEqual({ '24h': null, '7d': null, '30d': null });
    const disabled = replay(
      [
        [T0, 'pending'],
        [T0 + H, 'up'],
        [T0 + 2 * H, 'disabled'],
      ],
      T0 + 3 * D,
    ).uptime;
    expect(disabled['24h']).toBeNull();
    expect(disabled['7d']).toBe(1);
  });

  it('cuts each window where it begins, the current state counting up to now', () => {
    const steps: [number, TunnelStateName][] = [
      [T0, 'pending'],
      [T0 + H, 'up'],
      [T0 + 3 * D, 'down'],
      [T0 + 3 * D + 6 * H, 'up'],
      [T0 + 20 * D, 'down'],
    ];
    const now = T0 + 20 * D + 30 * 60_000;
    const { uptime } = replay(steps, now);
    for (const [name, windowMs] of Object.entries(UPTIME_WINDOWS)) {
      expect(uptime[name as keyof typeof UPTIME_WINDOWS]).toBeCloseTo(
        bruteForce(steps, now, windowMs) ?? Number.NaN,
        6,
      );
    }
  });

  it('forgets spans older than 30 days and stays within its size however much a tunnel flaps', () => {
    const steps: [number, TunnelStateName][] = [[T0, 'pending']];
    // 400 outages of 5 minutes, one every 2 hours: a month of flapping.
    for (let i = 0; i < 400; i++) {
      steps.push([T0 + H + i * 2 * H, 'up'], [T0 + H + i * 2 * H + H, 'down']);
      steps.push([T0 + H + i * 2 * H + H + 5 * 60_000, 'up']);
    }
    const now = (steps.at(-1)?.[0] ?? 0) + H;
    const { ledger, uptime } = replay(steps, now);
    expect(ledger.spans.length).toBeLessThanOrEqual(MAX_SPANS);
    expect(ledger.spans.every(([, end]) => end > now - UPTIME_WINDOWS['30d'] - 2 * H)).toBe(true);
    // Merged spans keep their totals: the figures stay within 0.1 % of the truth.
    for (const [name, windowMs] of Object.entries(UPTIME_WINDOWS)) {
      const truth = bruteForce(steps, now, windowMs) ?? Number.NaN;
      expect(Math.abs((uptime[name as keyof typeof UPTIME_WINDOWS] ?? 0) - truth)).toBeLessThan(0.001);
    }
  });

  it('has no figure for a window that holds only excluded time, however the spans divide', () => {
    // Up for 1 ms two days ago, disabled since (recorded again later): the 24 h window is all
    // disabled, which the spans' shares summed to a hair under the window (then read 100 %).
    const disabled = T0 + 2 + 169_419_774;
    const steps: [number, TunnelStateName][] = [
      [T0, 'pending'],
      [T0 + 1, 'up'],
      [T0 + 2, 'disabled'],
      [disabled, 'disabled'],
    ];
    const { uptime } = replay(steps, disabled + 22);
    expect(uptime['24h']).toBeNull();
    expect(uptime['7d']).toBe(1);
  });

  it('matches a brute-force count for any history (property)', () => {
    const state = fc.constantFrom<TunnelStateName>('up', 'down', 'disabled');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 3 * D }), state), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 0, max: 2 * D }),
        (gaps, tail) => {
          const steps: [number, TunnelStateName][] = [[T0, 'pending']];
          let at = T0;
          for (const [gap, s] of gaps) {
            at += gap;
            steps.push([at, s]);
          }
          const now = at + tail;
          const { uptime } = replay(steps, now);
          for (const [name, windowMs] of Object.entries(UPTIME_WINDOWS)) {
            const truth = bruteForce(steps, now, windowMs);
            const got = uptime[name as keyof typeof UPTIME_WINDOWS];
            if (truth === null) expect(got).toBeNull();
            else expect(Math.abs((got ?? -1) - truth)).toBeLessThan(1e-5);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

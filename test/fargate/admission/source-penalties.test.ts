/** Penalties per source after sshd's PerSourcePenalties: accumulate, activate, cap, expire, stay bounded. */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PENALTIES,
  type PenaltySettings,
  SourcePenalties,
} from '../../../fargate/admission/source-penalties';

function harness(overrides: Partial<PenaltySettings> = {}) {
  let now = 0;
  const penalties = new SourcePenalties({ ...DEFAULT_PENALTIES, ...overrides }, () => now);
  return { penalties, advance: (ms: number) => (now += ms) };
}

describe('SourcePenalties', () => {
  it('adds up offences and counts a source as penalized only beyond the activation threshold', () => {
    const { penalties } = harness();
    expect(penalties.penalize('a', 'silent')).toEqual({ outstandingMs: 10_000, active: false });
    expect(penalties.isPenalized('a')).toBe(false);
    expect(penalties.penalize('a', 'auth-failure')).toEqual({ outstandingMs: 15_000, active: false });
    expect(penalties.penalize('a', 'handshake-timeout')).toEqual({ outstandingMs: 25_000, active: true });
    expect(penalties.outstandingMs('a')).toBe(25_000);
    expect(penalties.lastOffence('a')).toBe('handshake-timeout');
    expect(penalties.isPenalized('b')).toBe(false);
  });

  it('caps the outstanding penalty, which then runs out', () => {
    const { penalties, advance } = harness();
    for (let i = 0; i < 100; i++) penalties.penalize('a', 'silent');
    expect(penalties.outstandingMs('a')).toBe(600_000);
    advance(599_000);
    expect(penalties.outstandingMs('a')).toBe(1_000);
    advance(1_000);
    expect(penalties.isPenalized('a')).toBe(false);
    // A new slip after it ran out starts afresh, below the threshold.
    expect(penalties.penalize('a', 'silent')).toEqual({ outstandingMs: 10_000, active: false });
  });

  it('slows down a source that keeps failing logins, never one that fails a few', () => {
    const { penalties, advance } = harness({ failuresBeforeDelay: 3, maxFailureDelayMs: 1_000 });
    expect([1, 2, 3].map(() => penalties.authFailure('a'))).toEqual([0, 0, 0]);
    expect([4, 5, 6, 7, 8].map(() => penalties.authFailure('a'))).toEqual([200, 400, 800, 1_000, 1_000]);
    advance(60_001);
    expect(penalties.authFailure('a')).toBe(0);
  });

  it('remembers a bounded number of sources, forgetting the one that offended longest ago', () => {
    const { penalties } = harness({ maxSources: 3 });
    for (const s of ['a', 'b', 'c']) penalties.penalize(s, 'silent');
    penalties.penalize('a', 'silent'); // a is recent again
    penalties.penalize('d', 'silent');
    expect(penalties.size).toBe(3);
    expect(penalties.lastOffence('b')).toBeUndefined();
    expect(['a', 'c', 'd'].map((s) => penalties.lastOffence(s))).toEqual(['silent', 'silent', 'silent']);
    for (let i = 0; i < 10_000; i++) penalties.penalize(`s${i}`, 'auth-failure');
    expect(penalties.size).toBe(3);
  });
});

/** Logged-in sessions per tunnel: the limit, idempotent counting, and places given back. */
import { describe, expect, it } from 'vitest';
import { TunnelSessions } from '../../../fargate/reverse/tunnel-sessions';

describe('TunnelSessions', () => {
  it('admits up to the limit per tunnel, each tunnel on its own', () => {
    const sessions = new TunnelSessions(2);
    expect(sessions.tryAdd('tn_a', 'c1')).toEqual({ ok: true });
    expect(sessions.tryAdd('tn_a', 'c2')).toEqual({ ok: true });
    expect(sessions.tryAdd('tn_a', 'c3')).toEqual({ ok: false, count: 2 });
    expect(sessions.tryAdd('tn_b', 'c4')).toEqual({ ok: true });
    expect(sessions.tryAdd('tn_a', 'c1')).toEqual({ ok: true }); // already counted: not twice
    expect(sessions.count('tn_a')).toBe(2);
  });

  it('gives the place back once, however often a session is removed', () => {
    const sessions = new TunnelSessions(1);
    sessions.tryAdd('tn_a', 'c1');
    sessions.remove('tn_a', 'c1');
    sessions.remove('tn_a', 'c1');
    sessions.remove('tn_a', 'c9');
    expect(sessions.count('tn_a')).toBe(0);
    expect(sessions.tryAdd('tn_a', 'c2')).toEqual({ ok: true });
    expect(sessions.tryAdd('tn_a', 'c3')).toEqual({ ok: false, count: 1 });
  });
});

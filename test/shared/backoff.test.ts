import { describe, expect, it } from 'vitest';
import { Backoff } from '../../shared/backoff';

const settings = { initialMs: 1_000, maxMs: 8_000, healthyAfterMs: 60_000 };

describe('Backoff', () => {
  it('doubles its step up to the cap, each delay between half and all of the step', () => {
    const low = new Backoff(settings, () => 0);
    const high = new Backoff(settings, () => 1);
    expect(Array.from({ length: 6 }, () => low.next())).toEqual([500, 1_000, 2_000, 4_000, 4_000, 4_000]);
    expect(Array.from({ length: 6 }, () => high.next())).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
  });

  it('starts over after reset (a retry asked for after a fix) or a connection that stayed up', () => {
    const backoff = new Backoff(settings, () => 1);
    for (let i = 0; i < 5; i++) backoff.next();
    backoff.reset();
    expect(backoff.next()).toBe(1_000);
    for (let i = 0; i < 5; i++) backoff.next();
    backoff.connectionEnded(settings.healthyAfterMs - 1);
    expect(backoff.next()).toBe(8_000);
    backoff.connectionEnded(settings.healthyAfterMs);
    expect(backoff.next()).toBe(1_000);
  });
});

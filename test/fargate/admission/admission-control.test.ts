/**
 * Admission of unauthenticated connections as pure logic: sshd's random early drop curve, budgets
 * per source that shrink with penalties, and the guarantee that sets it apart from sshd: a clean
 * source always gets in, by evicting the most expendable connection instead of being refused.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AdmissionControl,
  type AdmissionSettings,
  DropReason,
  earlyDropProbability,
  type UnauthenticatedConnection,
} from '../../../fargate/admission/admission-control';
import { DEFAULT_PENALTIES } from '../../../fargate/admission/source-penalties';

const settings = (overrides: Partial<AdmissionSettings> = {}): AdmissionSettings => ({
  maxStartups: { start: 10, rate: 30, full: 20 },
  perSourceMaxStartups: 8,
  penalizedSourceMinStartups: 2,
  bannerTimeoutMs: 5_000,
  penalties: DEFAULT_PENALTIES,
  ...overrides,
});

/** An admission control on a hand-driven clock and dice, recording every eviction. */
function harness(overrides: Partial<AdmissionSettings> = {}, dice = () => 0.99) {
  let now = 1_000_000;
  const evicted: { address: string; reason: DropReason; id: number }[] = [];
  const control = new AdmissionControl(settings(overrides), () => now, dice);
  const admit = (address: string) => {
    let self: UnauthenticatedConnection | undefined;
    const result = control.admit(address, (reason) => {
      evicted.push({ address, reason, id: self?.id ?? -1 });
    });
    if (result.ok) self = result.connection;
    return result;
  };
  const admitted = (address: string): UnauthenticatedConnection => {
    const result = admit(address);
    if (!result.ok) throw new Error(`${address} refused: ${result.reason}`);
    return result.connection;
  };
  return { control, admit, admitted, evicted, advance: (ms: number) => (now += ms) };
}

describe('earlyDropProbability (sshd should_drop_connection)', () => {
  it.each([
    [0, 0],
    [9, 0],
    [10, 0.3],
    [15, 0.65],
    [19, 0.93],
    [20, 1],
    [500, 1],
  ])('at %i unauthenticated connections of 10:30:20 drops with probability %f', (n, p) => {
    expect(earlyDropProbability(n, { start: 10, rate: 30, full: 20 })).toBeCloseTo(p, 5);
  });

  it('drops everything from start when the rate is 100 (a lone number, as in sshd)', () => {
    expect(earlyDropProbability(4, { start: 5, rate: 100, full: 5 })).toBe(0);
    expect(earlyDropProbability(5, { start: 5, rate: 100, full: 5 })).toBe(1);
  });
});

describe('AdmissionControl', () => {
  it('at the global limit, a clean source evicts the oldest silent connection of the source holding the most', () => {
    const h = harness({ maxStartups: { start: 6, rate: 100, full: 6 } });
    const a = [h.admitted('10.0.0.1'), h.admitted('10.0.0.1')];
    h.advance(1);
    const b = [h.admitted('10.0.0.2'), h.admitted('10.0.0.2'), h.admitted('10.0.0.2')];
    h.advance(1);
    const c = h.admitted('10.0.0.3');
    b[0]?.bannerReceived(); // talking: not the first to go even though it is the oldest of the biggest
    expect(h.control.unauthenticatedCount).toBe(6);

    const customer = h.admit('10.0.0.9');
    expect(customer.ok).toBe(true);
    expect(h.evicted).toEqual([
      { address: '10.0.0.2', reason: DropReason.evictedForCleanSource, id: b[1]?.id },
    ]);
    expect(h.control.unauthenticatedCount).toBe(6);
    expect([...a, ...b, c].filter((x) => x.isDone).map((x) => x.id)).toEqual([b[1]?.id]);
  });

  it('at the global limit, a source that is not clean is refused and nobody is evicted', () => {
    const h = harness({ maxStartups: { start: 4, rate: 100, full: 4 }, perSourceMaxStartups: 8 });
    for (let i = 0; i < 2; i++) h.admitted('10.0.0.1'); // 8 / 4 = 2 at once: no longer clean
    for (let i = 0; i < 2; i++) h.admitted('10.0.0.2');
    const refused = h.admit('10.0.0.1');
    expect(refused).toMatchObject({ ok: false, reason: DropReason.full });
    expect(h.evicted).toEqual([]);
    expect(h.control.stats().dropped).toEqual({ [DropReason.full]: 1 });
  });

  it('a source at its budget makes room from its own silent connections: the customer behind an attacker gets in', () => {
    const h = harness({ perSourceMaxStartups: 3 });
    const silent = [h.admitted('10.0.0.1'), h.admitted('10.0.0.1'), h.admitted('10.0.0.1')];
    const customer = h.admit('10.0.0.1');
    expect(customer.ok).toBe(true);
    expect(h.evicted).toEqual([
      { address: '10.0.0.1', reason: DropReason.evictedForSameSource, id: silent[0]?.id },
    ]);
    // Once it has sent its banner it is no longer expendable; the attacker's next ones evict each other.
    if (customer.ok) customer.connection.bannerReceived();
    for (let i = 0; i < 10; i++) expect(h.admit('10.0.0.1').ok).toBe(true);
    expect(customer.ok && customer.connection.isDone).toBe(false);
  });

  it('refuses a newcomer when every connection of its source is a login in progress', () => {
    const h = harness({ perSourceMaxStartups: 2 });
    for (const c of [h.admitted('10.0.0.1'), h.admitted('10.0.0.1')]) c.bannerReceived();
    expect(h.admit('10.0.0.1')).toMatchObject({ ok: false, reason: DropReason.perSourceLimit });
    expect(h.evicted).toEqual([]);
  });

  it('within a source, evicts failed logins first, then the oldest silent, then logins stuck past the banner deadline', () => {
    const h = harness({ perSourceMaxStartups: 3 });
    const stuck = h.admitted('10.0.0.1');
    stuck.bannerReceived();
    const silent = h.admitted('10.0.0.1');
    const failed = h.admitted('10.0.0.1');
    failed.bannerReceived();
    failed.loginFailed();
    const fresh = h.admitted('10.0.0.1'); // takes the failed one's place, not the older silent one's
    expect(h.evicted.map((e) => e.id)).toEqual([failed.id]);
    h.admitted('10.0.0.1'); // no failed left: the oldest silent
    expect(h.evicted.map((e) => e.id)).toEqual([failed.id, silent.id]);
    fresh.bannerReceived();
    h.admitted('10.0.0.1'); // the newest is silent: it goes before the logins in progress
    expect(h.evicted).toHaveLength(3);
    expect([stuck.isDone, fresh.isDone]).toEqual([false, false]);
    h.advance(5_001);
    h.admitted('10.0.0.1'); // the newest is silent again; then the stuck one
    h.admitted('10.0.0.1');
    expect(h.evicted).toHaveLength(5);
    expect(stuck.isDone).toBe(false);
  });

  it('never evicts a login in progress before it is stuck past the banner deadline', () => {
    const h = harness({ perSourceMaxStartups: 2 });
    const older = h.admitted('10.0.0.1');
    older.bannerReceived();
    const younger = h.admitted('10.0.0.1');
    younger.bannerReceived();
    expect(h.admit('10.0.0.1')).toMatchObject({ ok: false, reason: DropReason.perSourceLimit });
    h.advance(5_001);
    expect(h.admit('10.0.0.1').ok).toBe(true);
    expect([older.isDone, younger.isDone]).toEqual([true, false]);
  });

  it('evicts one for one when a shrunk budget is exceeded: a young connection is not swept away with the rest', () => {
    const h = harness({ perSourceMaxStartups: 8, penalizedSourceMinStartups: 2 });
    const held = Array.from({ length: 8 }, () => h.admitted('10.0.0.1'));
    held[0]?.bannerReceived();
    for (let i = 0; i < 120; i++) held[0]?.loginFailed(); // 120 × 5 s: the cap
    expect(h.control.budgetOf('10.0.0.1')).toBe(2);
    const customer = h.admitted('10.0.0.1');
    expect(h.evicted.map((e) => e.id)).toEqual([held[0]?.id]);
    h.admitted('10.0.0.1');
    h.admitted('10.0.0.1');
    expect(h.evicted.map((e) => e.id)).toEqual([held[0]?.id, held[1]?.id, held[2]?.id]);
    expect(customer.isDone).toBe(false);
    expect(h.control.unauthenticatedCount).toBe(8);
  });

  it('drops at random between start and full only for sources that are not clean', () => {
    const h = harness({ maxStartups: { start: 2, rate: 30, full: 100 }, perSourceMaxStartups: 8 }, () => 0);
    h.admitted('10.0.0.1');
    h.admitted('10.0.0.1');
    // 10.0.0.1 holds 2 = 8 / 4: busy, and the dice always say drop.
    expect(h.admit('10.0.0.1')).toMatchObject({ ok: false, reason: DropReason.earlyDrop });
    // Clean sources are never dropped at random, whatever the dice say.
    for (let i = 0; i < 20; i++) expect(h.admit(`10.0.1.${i}`).ok).toBe(true);
  });

  it('a penalized source is not clean: its budget shrinks toward the floor and it is dropped at random', () => {
    const h = harness({ maxStartups: { start: 1, rate: 50, full: 100 }, perSourceMaxStartups: 8 }, () => 0.4);
    expect(h.control.budgetOf('10.0.0.1')).toBe(8);
    for (let i = 0; i < 2; i++) h.admitted('10.0.0.1').timedOut(DropReason.silent, 'silent'); // 20 s > 15 s
    expect(h.control.budgetOf('10.0.0.1')).toBe(7); // floor(8 × (1 − 20/600))
    for (let i = 0; i < 60; i++) h.admitted('10.0.0.2').timedOut(DropReason.silent, 'silent');
    expect(h.control.budgetOf('10.0.0.2')).toBe(2); // 600 s outstanding, the cap: the floor
    h.admitted('10.0.0.3'); // someone else holds one: 1 >= start
    expect(h.admit('10.0.0.2')).toMatchObject({
      ok: false,
      reason: DropReason.earlyDrop,
      fields: { penalized: true },
    });
    expect(h.admit('10.0.0.4').ok).toBe(true);
    h.advance(600_001);
    expect(h.control.budgetOf('10.0.0.2')).toBe(8);
    expect(h.admit('10.0.0.2').ok).toBe(true);
  });

  it('counts each connection once however many times it is released, and ignores events after that', () => {
    const h = harness();
    const c = h.admitted('10.0.0.1');
    c.done();
    c.done();
    c.bannerReceived();
    expect(c.loginFailed()).toBe(0);
    expect(h.control.unauthenticatedCount).toBe(0);
    expect(h.control.stats()).toMatchObject({ unauthenticated: 0, sources: 0, admitted: 1 });
  });

  it('an IPv6 /64 is one source', () => {
    const h = harness({ perSourceMaxStartups: 2 });
    h.admitted('2001:db8:1:2::1');
    h.admitted('2001:db8:1:2::ffff');
    expect(h.admit('2001:db8:1:2:aaaa::3').ok).toBe(true);
    expect(h.evicted.map((e) => e.reason)).toEqual([DropReason.evictedForSameSource]);
    expect(h.control.stats().sources).toBe(1);
  });

  it('keeps its promises under any sequence of events (model check)', () => {
    type Op =
      | { op: 'admit'; source: number }
      | { op: 'banner' | 'fail' | 'done' | 'timeout'; pick: number }
      | { op: 'wait'; ms: number };
    const op = fc.oneof(
      fc.record({ op: fc.constant('admit' as const), source: fc.integer({ min: 0, max: 5 }) }),
      fc.record({
        op: fc.constantFrom('banner' as const, 'fail' as const, 'done' as const, 'timeout' as const),
        pick: fc.nat(),
      }),
      fc.record({ op: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 20_000 }) }),
    );
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 300 }),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        (ops: Op[], dice) => {
          let now = 0;
          const full = 12;
          const control = new AdmissionControl(
            settings({ maxStartups: { start: 4, rate: 30, full }, perSourceMaxStartups: 5 }),
            () => now,
            () => dice,
          );
          const live: UnauthenticatedConnection[] = [];
          const evictions = new Map<number, number>();
          for (const step of ops) {
            if (step.op === 'wait') now += step.ms;
            else if (step.op === 'admit') {
              const address = `10.0.0.${step.source}`;
              let me = 0;
              const held = live.filter((c) => !c.isDone && c.source === address).length;
              const anySilent = live.some((c) => !c.isDone && !c.hasSentBanner);
              const result = control.admit(address, () => evictions.set(me, (evictions.get(me) ?? 0) + 1));
              if (result.ok) {
                me = result.connection.id;
                live.push(result.connection);
              } else if (held === 0 && anySilent && step.source < 3) {
                // A source holding nothing and never penalized (0..2 never time out below) must get
                // in while anything silent can make room.
                throw new Error(`clean source ${address} refused: ${result.reason}`);
              }
            } else {
              const open = live.filter((c) => !c.isDone);
              const c = open[step.pick % Math.max(1, open.length)];
              if (!c) continue;
              if (step.op === 'banner') c.bannerReceived();
              else if (step.op === 'fail') {
                c.bannerReceived();
                if (!c.source.endsWith('.0') && !c.source.endsWith('.1') && !c.source.endsWith('.2'))
                  c.loginFailed();
              } else if (step.op === 'done') c.done();
              else if (!['10.0.0.0', '10.0.0.1', '10.0.0.2'].includes(c.source))
                c.timedOut(DropReason.silent, 'silent');
            }
            const open = live.filter((c) => !c.isDone).length;
            if (control.unauthenticatedCount !== open)
              throw new Error(`count ${control.unauthenticatedCount} != ${open}`);
            if (open > full) throw new Error(`${open} over the limit ${full}`);
          }
          for (const [id, times] of evictions)
            if (times !== 1) throw new Error(`connection ${id} evicted ${times} times`);
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });
});

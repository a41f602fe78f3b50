/**
 * The cost model: its arithmetic on a small fixed input (checked by hand below), its reading of
 * results.json, and docs/cost-model.md's generated section being exactly what the script computes
 * from the committed bench/results.json (so no figure on the page is typed by hand).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { measuredFrom } from '../../bench/cost/inputs';
import { ASSUMPTIONS, type Assumptions, estimate, interpolate, type Measured } from '../../bench/cost/model';
import { PRICES } from '../../bench/cost/prices';
import { formatUsd, replaceSection, sectionOf } from '../../bench/cost/render';
import { COST_MODEL_MD, costSection, RESULTS_JSON } from '../../bench/cost-model';

const MEASURED: Measured = {
  dynamo: [
    { tunnels: 1, readUnitsPerMin: 10, writeUnitsPerMin: 4, sweepMs: 100 },
    { tunnels: 1_000, readUnitsPerMin: 20, writeUnitsPerMin: 4, sweepMs: 1_000 },
    { tunnels: 10_000, readUnitsPerMin: 110, writeUnitsPerMin: 5, sweepMs: null },
  ],
  perLogin: { readUnits: 3, writeUnits: 5 },
  perApiCall: { readUnits: 2, writeUnits: 0 },
  fullPass: { tunnels: 10_000, msPerTunnel: 0.53, readUnitsPerTunnel: 3 },
  memoryPerTunnelKb: 40,
  baselineRssBytes: 100e6,
  sweepIntervalMs: 60_000,
};

/** Only the fixed costs and the steady DynamoDB rate, for hand arithmetic. */
const QUIET: Assumptions = {
  ...ASSUMPTIONS,
  reconnectsPerTunnelDay: 0,
  testCallsPerTunnelDay: 0,
  apiCallsPerTunnelDay: 0,
  fullPassesPerDay: 0,
};

const usdOf = (e: ReturnType<typeof estimate>, name: string) =>
  e.components.find((c) => c.name === name)?.usd;

describe('interpolate', () => {
  const points = [
    { x: 1, y: 10 },
    { x: 1_000, y: 20 },
    { x: 10_000, y: 110 },
  ];
  it.each([
    [0, 10],
    [1, 10],
    [1_000, 20],
    [5_500, 65],
    [20_000, 210],
  ])('at %i reads %d', (x, y) => {
    expect(interpolate(points, x)).toBeCloseTo(y, 9);
  });

  it('never goes below 0 past a falling last segment', () => {
    expect(
      interpolate(
        [
          { x: 1, y: 10 },
          { x: 2, y: 5 },
        ],
        100,
      ),
    ).toBe(0);
  });
});

describe('estimate', () => {
  it('sizes tasks for full tasks plus a spare, and prices them per hour', () => {
    const e = estimate(20_000, MEASURED, QUIET, PRICES);
    // ceil(20,000 / 10,000) + 1 spare; memory 2 × (100 MB + 40 KB × 10,000) = 1 GB < the 4 GB floor.
    expect(e.quantities.tasks).toBe(3);
    expect(e.quantities.taskGb).toBe(4);
    expect(usdOf(e, 'Fargate gateway tasks')).toBeCloseTo(3 * (2 * 0.03238 + 4 * 0.00356) * 730, 6);
    expect(estimate(100, MEASURED, QUIET, PRICES).quantities.tasks).toBe(2);
  });

  it('takes the steady DynamoDB rate at the size, plus each further task’s own', () => {
    const e = estimate(20_000, MEASURED, QUIET, PRICES);
    // 210 read units/min extrapolated, 2 more tasks at the 1-tunnel rate, 43,800 minutes a month.
    expect(e.quantities.readUnitsPerMonth).toBeCloseTo((210 + 2 * 10) * 43_800, 3);
    expect(usdOf(e, 'DynamoDB reads')).toBeCloseTo(((230 * 43_800) / 1e6) * 0.125, 6);
    // Writes: 4 + (5 - 4) / 9,000 × 10,000 past 10,000, and 4 more per minute for the 2 tasks.
    expect(e.quantities.writeUnitsPerMonth).toBeCloseTo((5 + 10_000 / 9_000 + 2 * 4) * 43_800, 3);
  });

  it('scales the reads beyond the 1-tunnel figure from the bench’s sweep interval to AWS’s', () => {
    const fast = estimate(20_000, { ...MEASURED, sweepIntervalMs: 30_000 }, QUIET, PRICES).quantities;
    // Swept twice as often as in AWS: the 200 read units/min of growth count half.
    expect(fast.readUnitsPerMonth).toBeCloseTo((10 + 200 / 2 + 2 * 10) * 43_800, 3);
    const slow = estimate(20_000, MEASURED, QUIET, PRICES).quantities;
    expect(slow.writeUnitsPerMonth).toBe(fast.writeUnitsPerMonth);
  });

  it('charges logins and API calls what the bench measured for one', () => {
    const busy: Assumptions = { ...QUIET, reconnectsPerTunnelDay: 2, apiCallsPerTunnelDay: 10 };
    const quiet = estimate(100, MEASURED, QUIET, PRICES).quantities;
    const e = estimate(100, MEASURED, busy, PRICES).quantities;
    // 100 tunnels × 2 logins × 30 days × 3 read units; 100 × 10 calls × 30 days × 2 read units.
    expect(e.readUnitsPerMonth - quiet.readUnitsPerMonth).toBeCloseTo(
      100 * 2 * 30 * 3 + 100 * 10 * 30 * 2,
      3,
    );
    // Each login's `up` and the `down` before the next: 2 × 5 write units.
    expect(e.writeUnitsPerMonth - quiet.writeUnitsPerMonth).toBeCloseTo(100 * 2 * 30 * 10, 3);
  });

  it('reads every tunnel in each backstop full pass, and says when a full pass outgrows the timeout', () => {
    const passes: Assumptions = { ...QUIET, fullPassesPerDay: 4 };
    const quiet = estimate(20_000, MEASURED, QUIET, PRICES);
    const e = estimate(20_000, MEASURED, passes, PRICES);
    // 4 a day × 30 days × 20,000 tunnels × 3 read units.
    expect(e.quantities.readUnitsPerMonth - quiet.quantities.readUnitsPerMonth).toBeCloseTo(
      4 * 30 * 20_000 * 3,
      3,
    );
    expect(e.limits).toEqual(quiet.limits);
    // 0.53 ms a tunnel: 106 s at 200,000, past 55 s.
    expect(estimate(200_000, MEASURED, passes, PRICES).limits).toContain(
      "a full pass takes 106 s, past the sweeper's 55 s timeout",
    );
  });

  it('builds a connect load balancer per 50 ports and names each limit it passes', () => {
    const small = estimate(100, MEASURED, QUIET, PRICES);
    expect(small.quantities.connectLoadBalancers).toBe(2);
    expect(small.limits).toEqual([]);
    // NLB-hours of 1 public + 2 connect, and the bytes' NLCU (100 tunnels × 0.5 GB a day / 24, twice half of them).
    const nlcu = (50 * 0.5) / 24 + (100 * 0.5) / 24;
    expect(usdOf(small, 'Network Load Balancers')).toBeCloseTo(3 * 0.0225 * 730 + nlcu * 0.006 * 730, 6);
    const large = estimate(20_000, MEASURED, QUIET, PRICES);
    expect(large.quantities.connectLoadBalancers).toBe(400);
    expect(large.limits).toEqual([
      '400 connect load balancers of 50 ports: the stack builds at most 20',
      "401 load balancers: the region's default quota is 50",
      "20,000 target groups (one per port): the region's default quota is 3,000",
    ]);
  });

  it('runs the sweeper for the measured sweep time and says when it outgrows its timeout', () => {
    const e = estimate(100_000, MEASURED, QUIET, PRICES);
    // Sweeps measured at 1 and 1,000 only: 100 ms + 0.9 ms per tunnel beyond the first.
    expect(e.quantities.sweepMs).toBeCloseTo(100 + (900 / 999) * 99_999, 3);
    expect(e.limits).toContain("a sweep takes 90 s, past the sweeper's 55 s timeout");
  });

  it('adds up its components', () => {
    const e = estimate(10_000, MEASURED, ASSUMPTIONS, PRICES);
    expect(e.totalUsd).toBeCloseTo(
      e.components.reduce((sum, c) => sum + c.usd, 0),
      9,
    );
    expect(e.components.every((c) => c.usd >= 0)).toBe(true);
  });
});

describe('formatUsd', () => {
  it.each([
    [0.004, '$0.00'],
    [12.345, '$12.35'],
    [1234.5, '$1,235'],
  ])('%d → %s', (n, text) => {
    expect(formatUsd(n)).toBe(text);
  });
});

describe('the page', () => {
  it('refuses results without the counts it needs, naming them', () => {
    expect(() =>
      measuredFrom({ mode: 'full', command: 'npm run bench', startedAt: 'x', figures: [] }),
    ).toThrow(/lacks what the cost model needs \(details\)/);
  });

  it('replaces only the generated section', () => {
    expect(() => replaceSection('# no markers', 'x')).toThrow(/no generated section/);
  });

  it('shows exactly what the script computes from the committed bench/results.json', () => {
    const results: unknown = JSON.parse(readFileSync(RESULTS_JSON, 'utf8'));
    const doc = readFileSync(COST_MODEL_MD, 'utf8');
    expect(sectionOf(doc), 'run `npm run cost-model`').toBe(costSection(results));
  });
});

/**
 * DynamoDB reads and writes in steady state: what reaches DynamoDB Local through the metering
 * proxy over a window, at 1 idle tunnel and at more, in the units on-demand DynamoDB bills (read
 * and write request units, as DynamoDB reports them for each request) and in items. "Steady"
 * means after the sweeper has recorded every tunnel as up (read straight from the table), since
 * coming up is a transition and transitions are supposed to cost. DESIGN.md: steady-state reads
 * and writes are flat in the number of tunnels, so each count must stay within 2× the 1-tunnel one.
 */
import { METRIC_PREFIX } from '../shared/metrics/operator-metrics';
import { waitFor } from '../test/helpers/wait-for';
import type { Bench } from './context';
import type { Figure } from './report';
import type { DynamoUsage } from './support/dynamo-proxy';

/** Every count within this factor of the 1-tunnel count. */
export const FLAT_FACTOR = 2;

export interface PerMinute {
  readUnits: number;
  writeUnits: number;
  itemsRead: number;
  itemsWritten: number;
  requests: number;
}

export interface UsageCount {
  tunnels: number;
  windowMs: number;
  settleMs: number;
  perMinute: PerMinute;
  /** Everything in the window, unscaled (requests by operation included). */
  usage: DynamoUsage;
  /** Mean duration of the status sweeps that ended in the window (the operator metric), if any. */
  sweepMs: number | null;
  sweeps: number;
  /**
   * What the step's logins cost beyond the steady rate: from the first login of the step until
   * the sweeper recorded every tunnel up, less the steady rate over that time, per login (the
   * login's reads, the state write, the recorded transition). An estimate: the steady rate is the
   * one at the step's end, when the table was at its largest.
   */
  perLogin?: { logins: number; readUnits: number; writeUnits: number };
}

/** `<prefix>sweep_duration_seconds_{sum,count}` from the stack's Prometheus text. */
export function sweepTotals(metricsText: string): { seconds: number; count: number } | undefined {
  const value = (name: string) => {
    const line = metricsText.split('\n').find((l) => l.startsWith(`${METRIC_PREFIX}${name} `));
    const parsed = line ? Number(line.slice(line.indexOf(' ') + 1)) : Number.NaN;
    return Number.isFinite(parsed) ? parsed : undefined;
  };
  const seconds = value('sweep_duration_seconds_sum');
  const count = value('sweep_duration_seconds_count');
  return seconds === undefined || count === undefined ? undefined : { seconds, count };
}

/** `usage` over `windowMs`, per minute. */
export function perMinute(usage: DynamoUsage, windowMs: number): PerMinute {
  const scale = 60_000 / windowMs;
  const requests = Object.values(usage.requests).reduce((sum, n) => sum + n, 0);
  return {
    readUnits: usage.readUnits * scale,
    writeUnits: usage.writeUnits * scale,
    itemsRead: usage.itemsRead * scale,
    itemsWritten: usage.itemsWritten * scale,
    requests: requests * scale,
  };
}

/** `total` less `ratePerMinute` over `ms`, per one of `n`, never below 0. */
export function beyondSteady(total: number, ratePerMinute: number, ms: number, n: number): number {
  return Math.max(0, total - (ratePerMinute * ms) / 60_000) / n;
}

/** The stack's sweep totals now (the operator metric), if it reports them. */
export async function sweepsSoFar(bench: Bench): Promise<{ seconds: number; count: number } | undefined> {
  return sweepTotals(await bench.stack.api.metricsText());
}

/** Polls until a sweep ends (the count passes `count`), or `timeoutMs`; the totals then, if one did. */
async function nextSweepEnd(
  bench: Bench,
  count: number,
  timeoutMs: number,
): Promise<{ seconds: number; count: number } | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const totals = await sweepsSoFar(bench);
    if (!totals) return undefined;
    if (totals.count > count) return totals;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return undefined;
}

/**
 * Waits until no sweeper pass has ended for a while (five seconds, or half an interval when that
 * is shorter, so the periodic pass fits between): the passes over written tunnels that the stream
 * feeds after thousands of logins run back to back, and they are the logins' cost, not the steady
 * state's. False when passes still came at the deadline.
 */
async function streamDrained(bench: Bench, timeoutMs: number): Promise<boolean> {
  const quietMs = Math.min(5_000, bench.settings.sweepIntervalMs / 2);
  const deadline = Date.now() + timeoutMs;
  let last = await sweepsSoFar(bench);
  let lastChangeAt = Date.now();
  while (last && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = await sweepsSoFar(bench);
    if (!now) return false;
    if (now.count !== last.count) {
      last = now;
      lastChangeAt = Date.now();
    } else if (Date.now() - lastChangeAt >= quietMs) return true;
  }
  return false;
}

/**
 * Waits until the sweeper has recorded `ids` as up (and the stream's passes that followed their
 * logins are over), then meters DynamoDB over whole sweep periods
 * (from the end of one sweep to the end of the first one at least `dynamoWindowMs` later: a fixed
 * window would hold one sweep or two by chance, halving or doubling the reads); with `logins` (the
 * step's logins, when they started and the sweeps by then), also what they cost beyond the steady
 * rate.
 */
export async function countSteadyUsage(
  bench: Bench,
  ids: string[],
  settleBudgetMs: number,
  logins?: { count: number; from: number; sweepsAtFrom: number | undefined },
): Promise<UsageCount> {
  const { stack, settings } = bench;
  const settleStarted = Date.now();
  let told = settleStarted;
  // Only the ones not yet up are read again, and thousands less often: the reads go straight to
  // DynamoDB Local (not metered), which the stack needs meanwhile.
  let pending = ids;
  await waitFor(
    async () => {
      const states = await stack.persistedStates(pending);
      pending = pending.filter((id) => states.get(id) !== 'up');
      if (pending.length > 0 && Date.now() - told >= 30_000) {
        told = Date.now();
        const seconds = Math.round((told - settleStarted) / 1000);
        bench.log(`  ${ids.length - pending.length} of ${ids.length} recorded up after ${seconds} s`);
      }
      return pending.length === 0 || (false as const);
    },
    settleBudgetMs,
    {
      what: `the sweeper recording ${ids.length} tunnels as up`,
      intervalMs: ids.length > 1_000 ? 5_000 : 1_000,
    },
  );
  if (!(await streamDrained(bench, settleBudgetMs))) {
    bench.log('  the sweeper still ran passes over written tunnels at the deadline; metering anyway');
  }
  const settled = Date.now();
  const settleMs = settled - settleStarted;
  const sweepsAtSettle = await sweepsSoFar(bench);
  // A sweep over many tunnels takes a while: wait for one to end as long as an interval and a
  // sweep as long as the settle (which waited for a whole sweep) may take.
  const sweepWaitMs = 2 * settings.sweepIntervalMs + settleMs + 30_000;
  const first = sweepsAtSettle ? await nextSweepEnd(bench, sweepsAtSettle.count, sweepWaitMs) : undefined;
  const from = Date.now();
  bench.log(
    `  ${ids.length} tunnels recorded up after ${settleMs} ms; metering DynamoDB for ${settings.dynamoWindowMs} ms` +
      (first ? ' and to the end of the sweep then running' : ' (no sweep metric: a fixed window)'),
  );
  await new Promise((resolve) => setTimeout(resolve, settings.dynamoWindowMs));
  const last = first
    ? await nextSweepEnd(bench, (await sweepsSoFar(bench))?.count ?? first.count, sweepWaitMs)
    : undefined;
  const to = Date.now();
  await stack.proxy.answered(to, 10_000);
  const usage = stack.proxy.usageBetween(from, to);
  const sweeps = first && last ? last.count - first.count : 0;
  const sweepMs = first && last && sweeps > 0 ? ((last.seconds - first.seconds) * 1000) / sweeps : null;
  const count: UsageCount = {
    tunnels: ids.length,
    windowMs: to - from,
    settleMs,
    perMinute: perMinute(usage, to - from),
    usage,
    sweepMs,
    sweeps,
  };
  if (logins && logins.count > 0) {
    // Reads follow the sweeps (each reads every tunnel), writes the clock (heartbeats): take off
    // the steady reads of as many sweep periods as ended meanwhile, and the steady writes of the time.
    const during = stack.proxy.usageBetween(logins.from, settled);
    const ms = settled - logins.from;
    const sweepsDuring =
      logins.sweepsAtFrom !== undefined && sweepsAtSettle
        ? sweepsAtSettle.count - logins.sweepsAtFrom
        : undefined;
    const readsBackground =
      sweepsDuring !== undefined && sweeps > 0
        ? (usage.readUnits / sweeps) * sweepsDuring
        : (count.perMinute.readUnits * ms) / 60_000;
    count.perLogin = {
      logins: logins.count,
      readUnits: Math.max(0, during.readUnits - readsBackground) / logins.count,
      writeUnits: beyondSteady(during.writeUnits, count.perMinute.writeUnits, ms, logins.count),
    };
  }
  bench.log(
    `  ${ids.length} tunnels: ${count.perMinute.readUnits.toFixed(1)} read units/min, ` +
      `${count.perMinute.writeUnits.toFixed(1)} write units/min over ${Math.round((to - from) / 1000)} s; ${sweeps} sweeps` +
      (sweepMs === null ? '' : ` of ${Math.round(sweepMs)} ms`),
  );
  return count;
}

const tunnelsText = (n: number) => `${n.toLocaleString('en-US')} idle tunnel${n === 1 ? '' : 's'}`;

/**
 * Reads and writes per minute at each of `sizes` (1 first), each larger size against the 1-tunnel
 * figure (the ratio column is taken against it), and the sweep's duration at each size; a size not
 * counted shows as not measured.
 */
export function dynamoFigures(counts: UsageCount[], sizes: number[]): Figure[] {
  const one = counts.find((c) => c.tunnels === 1);
  const window = `${Math.round((counts[0]?.windowMs ?? 0) / 1000)} s windows scaled to a minute`;
  const rows = (kind: 'reads' | 'writes'): Figure[] =>
    sizes.map((tunnels) => {
      const count = counts.find((c) => c.tunnels === tunnels);
      const pick = (c: UsageCount | undefined) =>
        c ? (kind === 'reads' ? c.perMinute.readUnits : c.perMinute.writeUnits) : null;
      const value = pick(count);
      const baseline = pick(one);
      const isBaseline = tunnels === 1;
      const items = count
        ? kind === 'reads'
          ? count.perMinute.itemsRead
          : count.perMinute.itemsWritten
        : null;
      const notes = [
        ...(items === null ? ['not counted (see the phase errors in results.json)'] : []),
        ...(items === null
          ? []
          : [
              `${Math.round(items).toLocaleString('en-US')} items ${kind === 'reads' ? 'read' : 'written'}/min`,
            ]),
        ...(isBaseline
          ? [
              window,
              'request units as DynamoDB reports them (ReturnConsumedCapacity), the unit on-demand tables bill',
              'ratio: ÷ this 1-tunnel figure',
            ]
          : []),
        ...(count && count.usage.unmetered > 0 ? [`${count.usage.unmetered} requests without units`] : []),
        ...(kind === 'writes' && count && count.usage.estimatedWrites > 0
          ? [`${count.usage.estimatedWrites} writes refused by their condition, units estimated`]
          : []),
      ];
      return {
        id: `dynamo.${kind}.${tunnels}`,
        label: `DynamoDB ${kind} per minute, ${tunnelsText(tunnels)}`,
        unit: `${kind === 'reads' ? 'read' : 'write'} units/min`,
        ours: value,
        openssh: null,
        ...(isBaseline
          ? {}
          : {
              baseline,
              target: {
                text: `≤ ${FLAT_FACTOR}× the 1-tunnel figure`,
                met: baseline === null || value === null ? null : value <= FLAT_FACTOR * baseline,
              },
            }),
        note: notes.join('; '),
      };
    });
  const sweeps: Figure[] = sizes.map((tunnels) => {
    const count = counts.find((c) => c.tunnels === tunnels);
    return {
      id: `dynamo.sweep.${tunnels}`,
      label: `Status sweep, ${tunnelsText(tunnels)}`,
      unit: 'ms',
      ours: count?.sweepMs ?? null,
      openssh: null,
      note: count
        ? `mean of the ${count.sweeps} sweeps that ended in the window (${METRIC_PREFIX}sweep_duration_seconds)`
        : 'not counted',
    };
  });
  return [...rows('reads'), ...rows('writes'), ...sweeps];
}

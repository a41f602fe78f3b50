/**
 * Prometheus text read back by a real parser: `prom2javascript`, which rejects any line it cannot
 * parse (a malformed label set, a value that is not a number), groups histograms by their labels
 * and refuses one whose `+Inf` bucket differs from its `_count`. On top of it, what it lets
 * through: every metric typed and described, buckets cumulative, no series twice.
 */
import { getMetricsFromIterator, type PromMetric } from 'prom2javascript';

export type MetricFamily = PromMetric;

/** A sample line whose value is NaN, as the text format spells it. */
const NAN_SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? NaN$/;

/** Parses and checks the text; throws naming what is wrong. Families by name. */
export async function parsePrometheusText(text: string): Promise<Map<string, MetricFamily>> {
  // The format allows a NaN sample (a gauge with nothing measured yet), which prom2javascript does
  // not read: such lines are checked here, whole, and left out of what it parses.
  const lines = text.split('\n').filter((line) => !NAN_SAMPLE.test(line));
  const misspelt = text.split('\n').find((line) => /\s(nan|Nan|NAN)$/.test(line));
  if (misspelt) throw new Error(`a NaN not spelt NaN: ${misspelt}`);
  const families = await getMetricsFromIterator(lines[Symbol.iterator]());
  const byName = new Map<string, MetricFamily>();
  for (const [name, family] of Object.entries(families)) {
    if (!['counter', 'gauge', 'histogram', 'summary'].includes(family.type))
      throw new Error(`metric ${name} has no TYPE`);
    if (!family.help) throw new Error(`metric ${name} has no HELP`);
    const series = new Set<string>();
    for (const metric of family.data) {
      const key = JSON.stringify(Object.entries(metric.labels).sort());
      if (series.has(key)) throw new Error(`series ${name}${key} appears twice`);
      series.add(key);
      if ('buckets' in metric) {
        const counts = Object.entries(metric.buckets)
          .sort(([a], [b]) => Number(a) - Number(b))
          .map(([, v]) => v);
        if (counts.some((c, i) => i > 0 && c < (counts[i - 1] ?? 0)))
          throw new Error(`histogram ${name} buckets are not cumulative`);
      }
    }
    byName.set(name, family);
  }
  return byName;
}

/** The value (a histogram's count) of the series of `name` whose labels include `match`; 0 when absent. */
export function seriesValue(
  families: Map<string, MetricFamily>,
  name: string,
  match: Record<string, string> = {},
): number {
  const data: { labels: Record<string, string>; value?: number; count?: number }[] =
    families.get(name)?.data ?? [];
  const metric = data.find((m) => Object.entries(match).every(([k, v]) => m.labels[k] === v));
  return metric?.value ?? metric?.count ?? 0;
}

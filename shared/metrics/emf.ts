/**
 * The operator metrics as CloudWatch embedded metric format (EMF): JSON log lines that CloudWatch
 * Logs turns into metrics by itself, so the gateway and the sweeper publish with no API call, no
 * extra permission and no agent. Same figures as `GET /metrics` (docs/metrics.md, "In CloudWatch"):
 * counters as their increase since the previous report, gauges as their level, histograms as
 * `<Name>Sum` and `<Name>Count` increases. One document per set of label values, since a document
 * carries one value per dimension.
 */
import type { OperatorMetrics } from './operator-metrics';
import { METRIC_PREFIX } from './operator-metrics';

export const EMF_NAMESPACE = 'Tunnelkeeper';

/** What `Registry.getMetricsAsJSON()` gives, as far as read here. */
export interface MetricFamilySnapshot {
  name: string;
  /** 'counter', 'gauge', 'histogram' at run time (prom-client's typings say a numeric enum). */
  type: unknown;
  values: { value: number; labels: Record<string, string | number | undefined>; metricName?: string }[];
}

type Unit = 'Count' | 'Seconds' | 'Bytes';

interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: Unit }[];
    }[];
  };
  [field: string]: unknown;
}

/** `tunnelkeeper_logins_refused_total` → `LoginsRefused`. */
export function cloudWatchName(name: string): string {
  return name
    .slice(METRIC_PREFIX.length)
    .replace(/_total$/, '')
    .split('_')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}

function unitOf(name: string): Unit {
  if (name.endsWith('_seconds')) return 'Seconds';
  if (name.includes('_bytes')) return 'Bytes';
  return 'Count';
}

/**
 * Which runtime reports what: the sweeper its sweeps and the tunnel counts, the gateways the rest
 * (each CloudWatch metric costs, so nobody reports zeros of what it never measures).
 */
export type EmfService = 'gateway' | 'sweeper';
const isSweeperMetric = (name: string) => /^tunnelkeeper_(tunnels|sweep_|alert_deliveries)/.test(name);

/** Ours only: prom-client's process metrics stay on `/metrics`. */
const isReported = (name: string) =>
  name.startsWith(METRIC_PREFIX) && !/^tunnelkeeper_(process_|nodejs_)/.test(name);

/**
 * EMF documents for `families` at `timestamp`, given the cumulative values of the previous report
 * (`previous`, updated in place to these), as `service` (its `Service` dimension).
 */
export function emfDocuments(
  families: readonly MetricFamilySnapshot[],
  previous: Map<string, number>,
  service: EmfService,
  timestamp: number,
): EmfDocument[] {
  const groups = new Map<string, { labels: Record<string, string>; metrics: Map<string, [number, Unit]> }>();
  const put = (labels: Record<string, string>, name: string, value: number, unit: Unit) => {
    const key = JSON.stringify(Object.entries(labels).sort());
    const group = groups.get(key) ?? { labels, metrics: new Map() };
    group.metrics.set(name, [value, unit]);
    groups.set(key, group);
  };
  const increase = (key: string, value: number) => {
    const before = previous.get(key) ?? 0;
    previous.set(key, value);
    // A counter below its last report restarted (a new process): all of it is new.
    return value >= before ? value - before : value;
  };
  for (const family of families) {
    if (!isReported(family.name) || isSweeperMetric(family.name) !== (service === 'sweeper')) continue;
    const base = cloudWatchName(family.name);
    const type = String(family.type);
    for (const sample of family.values) {
      const labels: Record<string, string> = {};
      for (const [k, v] of Object.entries(sample.labels))
        if (k !== 'le' && v !== undefined) labels[k] = String(v);
      const key = `${sample.metricName ?? family.name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (type === 'gauge') put(labels, base, sample.value, unitOf(family.name));
      else if (type === 'counter') put(labels, base, increase(key, sample.value), unitOf(family.name));
      else if (type === 'histogram' && sample.metricName?.endsWith('_sum'))
        put(labels, `${base}Sum`, increase(key, sample.value), unitOf(family.name));
      else if (type === 'histogram' && sample.metricName?.endsWith('_count'))
        put(labels, `${base}Count`, increase(key, sample.value), 'Count');
    }
  }
  return [...groups.values()].map(({ labels, metrics }) => {
    const doc: EmfDocument = {
      _aws: {
        Timestamp: timestamp,
        CloudWatchMetrics: [
          {
            Namespace: EMF_NAMESPACE,
            Dimensions: [['Service', ...Object.keys(labels).sort()]],
            Metrics: [...metrics].map(([name, [, unit]]) => ({ Name: name, Unit: unit })),
          },
        ],
      },
      Service: service,
      ...labels,
    };
    for (const [name, [value]] of metrics) doc[name] = value;
    return doc;
  });
}

/** Writes the registry's figures as EMF lines, each report the increase since the last one. */
export class EmfReporter {
  private readonly previous = new Map<string, number>();

  constructor(
    private readonly metrics: Pick<OperatorMetrics, 'registry'>,
    private readonly service: EmfService,
    private readonly write: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  async report(): Promise<void> {
    const families = await this.metrics.registry.getMetricsAsJSON();
    for (const doc of emfDocuments(families, this.previous, this.service, this.now()))
      this.write(`${JSON.stringify(doc)}\n`);
  }
}

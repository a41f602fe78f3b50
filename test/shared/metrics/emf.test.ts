/**
 * The embedded-metric-format writer: documents CloudWatch accepts (the spec's required shape: a
 * root `_aws` with a millisecond Timestamp and directives whose dimensions and metrics are root
 * members with values), counters as increases between reports, gauges as levels, each runtime
 * reporting only what it measures.
 */
import { describe, expect, it } from 'vitest';
import { cloudWatchName, EmfReporter, emfDocuments } from '../../../shared/metrics/emf';
import { OperatorMetrics } from '../../../shared/metrics/operator-metrics';

type Doc = ReturnType<typeof emfDocuments>[number];

/** What CloudWatch requires of a document (limits from the EMF specification). */
function expectValidEmf(doc: Doc): void {
  expect(Number.isInteger(doc._aws.Timestamp)).toBe(true);
  for (const directive of doc._aws.CloudWatchMetrics) {
    expect(directive.Namespace).toBe('Tunnelkeeper');
    expect(directive.Metrics.length).toBeLessThanOrEqual(100);
    for (const set of directive.Dimensions) {
      expect(set.length).toBeLessThanOrEqual(30);
      for (const name of set) expect(typeof doc[name]).toBe('string');
    }
    for (const metric of directive.Metrics) {
      expect(metric.Name).toMatch(/^[A-Z][A-Za-z]+$/);
      expect(['Count', 'Seconds', 'Bytes']).toContain(metric.Unit);
      expect(typeof doc[metric.Name]).toBe('number');
    }
  }
}

/** `Name{dim=value,...}` → value, over every document. */
function flatten(docs: Doc[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const doc of docs) {
    expectValidEmf(doc);
    for (const directive of doc._aws.CloudWatchMetrics) {
      const dims = (directive.Dimensions[0] ?? []).map((d) => `${d}=${String(doc[d])}`).join(',');
      for (const metric of directive.Metrics) out.set(`${metric.Name}{${dims}}`, Number(doc[metric.Name]));
    }
  }
  return out;
}

describe('embedded metric format', () => {
  it('names metrics as CloudWatch does here', () => {
    expect(cloudWatchName('tunnelkeeper_logins_refused_total')).toBe('LoginsRefused');
    expect(cloudWatchName('tunnelkeeper_tunnel_connection_open_seconds')).toBe('TunnelConnectionOpenSeconds');
  });

  it('reports counters as increases, gauges as levels, histograms as sum and count', async () => {
    const metrics = new OperatorMetrics();
    const previous = new Map<string, number>();
    const report = async () =>
      flatten(
        emfDocuments(await metrics.registry.getMetricsAsJSON(), previous, 'gateway', 1_700_000_000_000),
      );
    metrics.loginRefused('wrong_key');
    metrics.loginRefused('wrong_key');
    metrics.connectionOpened('reverse', 0.25);
    metrics.secretRead('hit');
    metrics.secretRead('hit');
    metrics.secretRead('miss');
    const first = await report();
    expect(first.get('SecretReads{Service=gateway,result=hit}')).toBe(2);
    expect(first.get('SecretReads{Service=gateway,result=miss}')).toBe(1);
    expect(first.get('LoginsRefused{Service=gateway,reason=wrong_key}')).toBe(2);
    expect(first.get('LoginsRefused{Service=gateway,reason=no_such_tunnel}')).toBe(0);
    expect(first.get('TunnelConnectionOpenSecondsCount{Service=gateway,type=reverse}')).toBe(1);
    expect(first.get('TunnelConnectionOpenSecondsSum{Service=gateway,type=reverse}')).toBe(0.25);
    metrics.loginRefused('wrong_key');
    const second = await report();
    expect(second.get('LoginsRefused{Service=gateway,reason=wrong_key}')).toBe(1);
    expect(second.get('TunnelConnectionOpenSecondsCount{Service=gateway,type=reverse}')).toBe(0);
    // The sweeper's figures are the sweeper's to report; process metrics stay on /metrics.
    expect([...second.keys()].some((k) => k.startsWith('Tunnels{') || k.startsWith('Sweep'))).toBe(false);
    expect([...second.keys()].some((k) => /Process|Nodejs/.test(k))).toBe(false);
  });

  it('lets the sweeper report tunnels by state and type, sweep times and deliveries', async () => {
    const metrics = new OperatorMetrics();
    const lines: string[] = [];
    const reporter = new EmfReporter(
      metrics,
      'sweeper',
      (line) => lines.push(line),
      () => 1_700_000_000_000,
    );
    metrics.sweepFinished({
      durationMs: 1500,
      tunnels: [
        { state: 'up', type: 'reverse', count: 7 },
        { state: 'down', type: 'standard', count: 2 },
      ],
      deliveries: { delivered: 3, retrying: 1, failed: 0 },
      transitions: 4,
      errors: 0,
    });
    await reporter.report();
    const docs = lines.map((line) => JSON.parse(line) as Doc);
    expect(lines.every((line) => line.endsWith('\n') && !line.slice(0, -1).includes('\n'))).toBe(true);
    const figures = flatten(docs);
    expect(figures.get('Tunnels{Service=sweeper,state=up,type=reverse}')).toBe(7);
    expect(figures.get('Tunnels{Service=sweeper,state=down,type=standard}')).toBe(2);
    expect(figures.get('Tunnels{Service=sweeper,state=up,type=standard}')).toBe(0);
    expect(figures.get('SweepDurationSecondsSum{Service=sweeper}')).toBe(1.5);
    expect(figures.get('AlertDeliveries{Service=sweeper,result=delivered}')).toBe(3);
    expect(figures.get('SweepTransitions{Service=sweeper}')).toBe(4);
    expect([...figures.keys()].some((k) => k.startsWith('LoginsRefused'))).toBe(false);
  });
});

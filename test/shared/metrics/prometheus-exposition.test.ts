import { describe, expect, it } from 'vitest';
import { OperatorMetrics } from '../../../shared/metrics/operator-metrics';
import { parsePrometheusText } from '../../helpers/prometheus-text';

describe('the operator metrics exposition', () => {
  it('spells a not-yet-sampled gauge NaN, as the format does, so a strict parser reads every line', async () => {
    // Before the event loop monitor's first sample its lag gauges are NaN (prom-client writes `Nan`).
    const text = await new OperatorMetrics({ processMetrics: true }).text();
    expect(text).toMatch(/^tunnelkeeper_nodejs_eventloop_lag_mean_seconds NaN$/m);
    expect(text).not.toMatch(/ Nan$/m);
    const families = await parsePrometheusText(text);
    expect(families.get('tunnelkeeper_nodejs_eventloop_lag_mean_seconds')?.type).toBe('gauge');
  });
});

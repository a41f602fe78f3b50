/**
 * API latency on the local stack (target 6): sequential requests over HTTP with keep-alive, as a
 * dashboard or script would make them: create (a reverse tunnel with the customer's key), get, and
 * status. Requests are spread over several workspaces so the per-workspace rate limit (a guard,
 * not what is measured) never answers 429; any non-2xx is counted and left out of the figures.
 */
import type { Bench, Measured } from './context';
import type { Figure } from './report';
import { afterWritesSettle, type CountingProxy } from './support/dynamo-proxy';
import { median, percentile } from './support/stats';

const WARM_UP = 10;

interface Series {
  ms: number[];
  failures: Record<string, number>;
  /**
   * DynamoDB request units per call (the sweeper's and heartbeats' share over the same time
   * included: an upper bound), for the cost model.
   */
  dynamo: { readUnits: number; writeUnits: number };
  /** Requests by operation in the window: whose they were, when a read-only call shows writes. */
  requests: Record<string, number>;
  /** How long the stack's writes took to go quiet before the window. */
  settleMs: number;
}

/** Writes a second the stack makes when nothing happens (heartbeats), with room to spare. */
const QUIET_WRITES_PER_SECOND = 2;
const SETTLE_TIMEOUT_MS = 60_000;

async function series(
  proxy: CountingProxy,
  count: number,
  call: (i: number) => Promise<{ status: number; ms: number }>,
): Promise<Series> {
  const out: Series = {
    ms: [],
    failures: {},
    dynamo: { readUnits: 0, writeUnits: 0 },
    requests: {},
    settleMs: 0,
  };
  for (let i = 0; i < WARM_UP; i++) await call(i);
  // What earlier calls set off (the sweeper recording new tunnels) is theirs, not this series'.
  out.settleMs = await afterWritesSettle(proxy, QUIET_WRITES_PER_SECOND, SETTLE_TIMEOUT_MS);
  const from = Date.now();
  for (let i = 0; i < count; i++) {
    const res = await call(i);
    if (res.status >= 200 && res.status < 300) out.ms.push(res.ms);
    else out.failures[res.status] = (out.failures[res.status] ?? 0) + 1;
  }
  const to = Date.now();
  await proxy.answered(to, 10_000);
  const usage = proxy.usageBetween(from, to);
  out.dynamo = { readUnits: usage.readUnits / count, writeUnits: usage.writeUnits / count };
  out.requests = usage.requests;
  return out;
}

export async function measureApi(bench: Bench): Promise<Measured> {
  const { api, proxy } = bench.stack;
  const { create, get, status } = bench.settings.api;
  const keys = api.keys;
  const created: { id: string; key: string }[] = [];
  const createSeries = await series(proxy, create, async (i) => {
    const key = keys[i % keys.length] ?? '';
    const res = await api.call(key, 'POST', '/v1/tunnels', {
      type: 'reverse',
      name: `bench-api-${i}`,
      service: { host: '127.0.0.1', port: bench.service.port },
      publicKey: bench.key.publicKey,
    });
    const id = (res.json as { id?: unknown } | undefined)?.id;
    if (res.status === 201 && typeof id === 'string') created.push({ id, key });
    return res;
  });
  const targets = created.length > 0 ? created : [{ id: bench.tunnels.stock.id, key: keys[0] ?? '' }];
  const pick = (i: number) => targets[i % targets.length] ?? { id: 'none', key: '' };
  const getSeries = await series(proxy, get, (i) => {
    const t = pick(i);
    return api.call(t.key, 'GET', `/v1/tunnels/${t.id}`);
  });
  const statusSeries = await series(proxy, status, (i) => {
    const t = pick(i);
    return api.call(t.key, 'GET', `/v1/tunnels/${t.id}/status`);
  });
  // Target 6 names get and status; create (a transaction and a port search) is shown without one.
  const rows = (name: string, s: Series, withTarget: boolean): Figure[] => {
    const p50 = median(s.ms);
    const p99 = percentile(s.ms, 99);
    const failures = Object.entries(s.failures);
    return [
      {
        id: `api.${name}.p50`,
        label: `API ${name}: p50`,
        unit: 'ms',
        ours: p50,
        openssh: null,
        ...(withTarget ? { target: { text: '≤ 10 ms', met: Number.isFinite(p50) ? p50 <= 10 : null } } : {}),
        note: `${s.ms.length} requests across ${keys.length} workspaces${
          failures.length > 0 ? `; left out: ${failures.map(([code, n]) => `${n} × ${code}`).join(', ')}` : ''
        }`,
      },
      {
        id: `api.${name}.p99`,
        label: `API ${name}: p99`,
        unit: 'ms',
        ours: p99,
        openssh: null,
        ...(withTarget ? { target: { text: '≤ 50 ms', met: Number.isFinite(p99) ? p99 <= 50 : null } } : {}),
      },
    ];
  };
  return {
    figures: [
      ...rows('create', createSeries, false),
      ...rows('get', getSeries, true),
      ...rows('status', statusSeries, true),
    ],
    details: { create: createSeries, get: getSeries, status: statusSeries },
  };
}

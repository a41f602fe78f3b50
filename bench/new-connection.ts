/**
 * New connection through a reverse tunnel (target 2): sequential connect + 1-byte echo from the
 * platform side, through the tunnel, to the customer's service and back; median and p99.
 */
import type { Bench, Measured } from './context';
import type { Figure } from './report';
import { median, percentile } from './support/stats';
import { connectAndEcho } from './support/traffic';

const WARM_UP = 30;
/** Paths alternate in blocks, so a burst of load from elsewhere on the machine hits both. */
const BLOCK = 25;

/** Up to `count` sequential probes through each port, stopping at `budgetMs` (then fewer samples). */
export async function sampleNewConnections(
  ports: Record<string, number>,
  count: number,
  budgetMs: number,
): Promise<Record<string, number[]>> {
  const samples: Record<string, number[]> = {};
  for (const [name, port] of Object.entries(ports)) {
    samples[name] = [];
    for (let i = 0; i < WARM_UP; i++) await connectAndEcho(port);
  }
  const deadline = Date.now() + budgetMs;
  for (let done = 0; done < count && Date.now() < deadline; done += BLOCK) {
    for (const [name, port] of Object.entries(ports)) {
      const list = samples[name] ?? [];
      for (let i = 0; i < Math.min(BLOCK, count - done); i++) list.push(await connectAndEcho(port));
    }
  }
  return samples;
}

/** Median and p99 rows against target 2. */
export function latencyFigures(
  id: string,
  label: string,
  ours: number[],
  openssh: number[] | undefined,
  withTarget = true,
): Figure[] {
  const oursMedian = median(ours);
  const oursP99 = percentile(ours, 99);
  const n = `${ours.length}${openssh ? ` / ${openssh.length}` : ''} samples`;
  return [
    {
      id: `${id}.median`,
      label: `${label}: median`,
      unit: 'ms',
      ours: oursMedian,
      openssh: openssh ? median(openssh) : null,
      ...(withTarget
        ? { target: { text: '≤ 1 ms', met: Number.isFinite(oursMedian) ? oursMedian <= 1 : null } }
        : {}),
      note: n,
    },
    {
      id: `${id}.p99`,
      label: `${label}: p99`,
      unit: 'ms',
      ours: oursP99,
      openssh: openssh ? percentile(openssh, 99) : null,
      ...(withTarget
        ? { target: { text: '≤ 5 ms', met: Number.isFinite(oursP99) ? oursP99 <= 5 : null } }
        : {}),
    },
  ];
}

export async function measureNewConnections(bench: Bench): Promise<Measured> {
  const { connections, quick } = bench.settings;
  const samples = await sampleNewConnections(
    { ours: bench.stockSsh.ours.port, openssh: bench.stockSsh.openssh.port },
    connections,
    quick ? 30_000 : 120_000,
  );
  return {
    figures: latencyFigures(
      'reverse.connect',
      'New connection through a reverse tunnel',
      samples.ours ?? [],
      samples.openssh,
    ),
    details: { samplesMs: samples },
  };
}

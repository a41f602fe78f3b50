/**
 * DynamoDB writes in steady state (target 7): write requests that reach DynamoDB Local through
 * the counting proxy, over a window, at 1 idle tunnel and at many. "Steady" means after the
 * sweeper has recorded every tunnel as up (read straight from the table), since coming up is a
 * transition and transitions are supposed to write.
 */
import { waitFor } from '../test/helpers/wait-for';
import type { Bench } from './context';
import type { Figure } from './report';
import { writesIn } from './support/dynamo-proxy';

export interface WriteCount {
  tunnels: number;
  perMinute: number;
  windowMs: number;
  /** Every request in the window, by operation (reads too). */
  counts: Record<string, number>;
  settleMs: number;
}

/** Waits until the sweeper has recorded `ids` as up, then counts writes for the window. */
export async function countSteadyWrites(
  bench: Bench,
  ids: string[],
  settleBudgetMs: number,
): Promise<WriteCount> {
  const { stack, settings } = bench;
  const settleStarted = Date.now();
  await waitFor(
    async () => {
      const states = await stack.persistedStates(ids);
      const up = ids.filter((id) => states.get(id) === 'up').length;
      return up === ids.length || (false as const);
    },
    settleBudgetMs,
    { what: `the sweeper recording ${ids.length} tunnels as up`, intervalMs: 1_000 },
  );
  const settleMs = Date.now() - settleStarted;
  bench.log(
    `  ${ids.length} tunnels recorded up after ${settleMs} ms; counting writes for ${settings.dynamoWindowMs} ms`,
  );
  const from = Date.now();
  await new Promise((resolve) => setTimeout(resolve, settings.dynamoWindowMs));
  const to = Date.now();
  const counts = stack.proxy.countsBetween(from, to);
  return {
    tunnels: ids.length,
    perMinute: (writesIn(counts) * 60_000) / (to - from),
    windowMs: to - from,
    counts,
    settleMs,
  };
}

export function dynamoFigures(atOne: WriteCount | undefined, atMany: WriteCount | undefined): Figure[] {
  const one = atOne?.perMinute ?? null;
  const many = atMany?.perMinute ?? null;
  const window = `${Math.round((atOne?.windowMs ?? atMany?.windowMs ?? 0) / 1000)} s windows scaled to a minute`;
  return [
    {
      id: 'dynamo.writes.one',
      label: 'DynamoDB writes per minute, 1 idle tunnel',
      unit: 'writes/min',
      ours: one,
      openssh: null,
      note: `${window}; writes = PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems`,
    },
    {
      id: 'dynamo.writes.many',
      label: `DynamoDB writes per minute, ${atMany?.tunnels ?? '?'} idle tunnels`,
      unit: 'writes/min',
      ours: many,
      openssh: null,
      target: {
        text: '≤ 2× the 1-tunnel figure',
        met: one !== null && many !== null ? many <= 2 * one : null,
      },
    },
  ];
}

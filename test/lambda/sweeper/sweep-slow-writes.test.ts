/**
 * A sweep on a table whose writes take long: each transition it records takes 10 s while the
 * gateway keeps beating. Found by the 1,000-tunnel gateway crash (test/e2e/gateway-crash-1000.test.ts):
 * a sweep that records hundreds of transitions on a busy table runs for longer than heartbeats take
 * to go stale, and a heartbeat read at its start must not make a live worker look gone at its end.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sweep } from '../../../lambda/sweeper/sweep';
import { createLogger } from '../../../shared/logger';
import type { StatusSettings } from '../../../shared/status';
import { DynamoStatusStore } from '../../../shared/store/dynamo-status-store';
import type { StatusChange } from '../../../shared/store/status-store';
import { RecordingSink } from '../../helpers/alerts';
import { createTestTable } from '../../helpers/dynamo';
import { gatewaySim, storeTunnels, T0 } from '../../helpers/gateway-sim';

const S = 1000;
const SETTINGS: StatusSettings = {
  heartbeatIntervalMs: 15 * S,
  keepaliveIntervalMs: 15 * S,
  downGraceMs: 0,
  bindHost: '127.0.0.1',
};
/** What recording one transition costs the sweeper's clock. */
const WRITE_MS = 10 * S;
const TUNNELS = 12;

describe('a sweep whose writes are slow', () => {
  let t: Awaited<ReturnType<typeof createTestTable>>;
  beforeEach(async () => {
    t = await createTestTable();
  });
  afterEach(() => t.drop());

  it('judges each page as of its reads: a live worker is never lost however long the sweep takes', async () => {
    const sim = gatewaySim(t.doc, t.tableName);
    const created = await storeTunnels(t.doc, t.tableName, 'ws_1', TUNNELS);
    await Promise.all(created.map((x) => sim.up(x.id, T0 - 60 * S, 'w1', `c-${x.id}`)));
    await sim.beat('w1', T0);
    const clock = { ms: T0 };
    // Every write takes WRITE_MS, during which the worker beats on (a live worker on a busy table).
    class SlowWrites extends DynamoStatusStore {
      override async recordChange(change: StatusChange): Promise<boolean> {
        const written = await super.recordChange(change);
        clock.ms += WRITE_MS;
        await sim.beat('w1', clock.ms);
        return written;
      }
    }
    const sink = new RecordingSink();
    const report = await sweep({
      store: new SlowWrites(t.doc, t.tableName),
      sinks: [sink],
      logger: createLogger('error', () => {}),
      settings: SETTINGS,
      now: () => new Date(clock.ms),
      random: () => 0.5,
      concurrency: 1,
    });

    // Longer than heartbeats take to go stale (35 s here), yet every tunnel was seen up.
    expect(clock.ms - T0).toBeGreaterThan(3 * 15 * S);
    expect(report).toMatchObject({ tunnels: TUNNELS, transitions: TUNNELS, errors: 0 });
    const histories = await Promise.all(
      created.map(async (x) => (await t.store.listEvents(x.id, 10)).map((e) => `${e.from}->${e.to}`)),
    );
    expect(histories).toEqual(created.map(() => ['pending->up']));
    expect(sink.sent).toEqual([]);
  });
});

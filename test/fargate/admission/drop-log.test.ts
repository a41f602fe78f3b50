/** Drop lines are rate-limited per reason: a few one by one, the rest summed up per window. */
import { describe, expect, it } from 'vitest';
import { DropLog } from '../../../fargate/admission/drop-log';
import { createLogger } from '../../../shared/logger';

function harness() {
  let now = 0;
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('debug', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  const log = new DropLog(logger, { windowMs: 10_000, linesPerWindow: 3 }, () => now);
  return { log, lines, advance: (ms: number) => (now += ms) };
}

describe('DropLog', () => {
  it('logs the first drops of each reason one by one and sums up the rest when the window ends', () => {
    const { log, lines, advance } = harness();
    for (let i = 0; i < 1_000; i++) log.drop(`10.0.0.${i % 7}`, 'silent', { penalized: true });
    log.drop('10.0.0.9', 'full');
    expect(lines.map((l) => [l.msg, l.reason, l.source])).toEqual([
      ['ssh connection dropped', 'silent', '10.0.0.0'],
      ['ssh connection dropped', 'silent', '10.0.0.1'],
      ['ssh connection dropped', 'silent', '10.0.0.2'],
      ['ssh connection dropped', 'full', '10.0.0.9'],
    ]);
    advance(10_000);
    log.flush();
    const summary = lines.slice(4);
    expect(summary).toHaveLength(1);
    expect(summary[0]).toMatchObject({
      level: 'warn',
      msg: 'ssh connection drops not logged one by one',
      reason: 'silent',
      count: 997,
      distinctSources: 7,
    });
    expect(summary[0]?.topSources).toHaveLength(5);
    // The next window logs one by one again.
    log.drop('10.0.0.1', 'silent');
    expect(lines.at(-1)).toMatchObject({ msg: 'ssh connection dropped', reason: 'silent' });
  });

  it('keeps a bounded count of sources however many there are, and says everything on close', () => {
    const { log, lines } = harness();
    for (let i = 0; i < 50_000; i++) log.drop(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 'silent');
    log.close();
    const summary = lines.find((l) => l.msg === 'ssh connection drops not logged one by one');
    expect(summary).toMatchObject({ count: 49_997, distinctSources: 1_000 });
  });
});

/** The tunnel port range cut into connect load balancers within AWS's quotas. */
import { describe, expect, it } from 'vitest';
import {
  connectBlocks,
  MAX_CONNECT_LOAD_BALANCERS,
  MAX_LISTENERS_PER_NLB,
  MAX_TARGETS_PER_NLB,
  portsPerLoadBalancer,
} from '../../../cdk/lib/connect-blocks';

describe('portsPerLoadBalancer', () => {
  it.each([
    [2, 50],
    [5, 50],
    [6, 41],
    [10, 25],
    [100, 2],
    [250, 1],
    [1000, 1],
  ])('%i gateway tasks: %i ports', (tasks, ports) => {
    expect(portsPerLoadBalancer(tasks)).toBe(ports);
  });

  it('keeps every port of a load balancer, with twice the tasks, within its targets and listeners', () => {
    for (let tasks = 2; tasks <= 250; tasks++) {
      const ports = portsPerLoadBalancer(tasks);
      expect(ports).toBeLessThanOrEqual(MAX_LISTENERS_PER_NLB);
      expect(ports * 2 * tasks).toBeLessThanOrEqual(MAX_TARGETS_PER_NLB);
    }
  });
});

describe('connectBlocks', () => {
  it.each<[string, { from: number; to: number }, number, { from: number; to: number }[]]>([
    ['one port', { from: 20000, to: 20000 }, 2, [{ from: 20000, to: 20000 }]],
    ['exactly one load balancer', { from: 20000, to: 20049 }, 2, [{ from: 20000, to: 20049 }]],
    [
      'one port more',
      { from: 20000, to: 20050 },
      2,
      [
        { from: 20000, to: 20049 },
        { from: 20050, to: 20050 },
      ],
    ],
    [
      'ten tasks',
      { from: 30000, to: 30059 },
      10,
      [
        { from: 30000, to: 30024 },
        { from: 30025, to: 30049 },
        { from: 30050, to: 30059 },
      ],
    ],
  ])('%s', (_, range, tasks, blocks) => {
    expect(connectBlocks(range, tasks)).toEqual(blocks);
  });

  it('covers a range, each port once, in order, up to the most load balancers allowed', () => {
    const range = { from: 20000, to: 20000 + MAX_CONNECT_LOAD_BALANCERS * 50 - 1 };
    const blocks = connectBlocks(range, 2);
    expect(blocks).toHaveLength(MAX_CONNECT_LOAD_BALANCERS);
    const ports = blocks.flatMap((b) => Array.from({ length: b.to - b.from + 1 }, (_, i) => b.from + i));
    expect(ports).toEqual(Array.from({ length: range.to - range.from + 1 }, (_, i) => range.from + i));
  });

  it('refuses one port more, saying how many it would take and how many fit', () => {
    const range = { from: 20000, to: 20000 + MAX_CONNECT_LOAD_BALANCERS * 50 };
    expect(() => connectBlocks(range, 2)).toThrow(
      `${MAX_CONNECT_LOAD_BALANCERS * 50 + 1} tunnel ports need ${MAX_CONNECT_LOAD_BALANCERS + 1} internal load balancers`,
    );
  });
});

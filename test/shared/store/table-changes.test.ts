import { describe, expect, it } from 'vitest';
import { changedTunnels, keyOfRecord } from '../../../shared/store/table-changes';

describe('changedTunnels', () => {
  it('names each tunnel whose STATE or META was written, once, and nothing else', () => {
    const keys = [
      { pk: 'TUNNEL#tun_a', sk: 'STATE' },
      { pk: 'TUNNEL#tun_b', sk: 'META' },
      { pk: 'TUNNEL#tun_a', sk: 'META' },
      { pk: 'TUNNEL#tun_c', sk: 'STATUS' },
      { pk: 'TUNNEL#tun_c', sk: 'EVENT#2026' },
      { pk: 'WORKER#w1', sk: 'META' },
      { pk: 'TUNNEL#tun_d' },
      {},
    ];
    expect(changedTunnels(keys)).toEqual(['tun_a', 'tun_b']);
  });

  it('reads a stream record’s keys without trusting their shape', () => {
    expect(keyOfRecord({ pk: { S: 'TUNNEL#tun_a' }, sk: { S: 'STATE' } })).toEqual({
      pk: 'TUNNEL#tun_a',
      sk: 'STATE',
    });
    expect(keyOfRecord({ pk: { N: '1' }, sk: 'STATE' })).toEqual({});
    expect(keyOfRecord(null)).toEqual({});
    expect(keyOfRecord('x')).toEqual({});
  });
});

/** `CONNECT_HOSTS`: blocks of tunnel ports and the stable host each is reached at. */
import { describe, expect, it } from 'vitest';
import {
  connectHostFor,
  formatConnectHosts,
  parseConnectHosts,
  uncoveredPorts,
} from '../../shared/connect-hosts';

const BLOCKS = [
  { from: 20000, to: 20049, host: 'connect-1.internal' },
  { from: 20050, to: 20099, host: 'connect-2.internal' },
];

describe('connectHostFor', () => {
  it.each([
    [20000, 'connect-1.internal'],
    [20049, 'connect-1.internal'],
    [20050, 'connect-2.internal'],
    [20099, 'connect-2.internal'],
    [20100, undefined],
    [19999, undefined],
  ])('port %i: %s', (port, host) => {
    expect(connectHostFor(BLOCKS, port)).toBe(host);
  });
});

describe('uncoveredPorts', () => {
  it.each<[string, { from: number; to: number }, string[]]>([
    ['a range the blocks cover exactly', { from: 20000, to: 20099 }, []],
    ['a range inside one block', { from: 20010, to: 20020 }, []],
    ['a range past the last block', { from: 20090, to: 20102 }, ['20100-20102']],
    ['a range before the first block', { from: 19999, to: 20000 }, ['19999']],
    ['a range around both', { from: 19990, to: 20101 }, ['19990-19999', '20100-20101']],
  ])('%s', (_, range, gaps) => {
    expect(uncoveredPorts(BLOCKS, range)).toEqual(gaps);
  });

  it('names a gap between blocks', () => {
    const blocks = [
      { from: 20000, to: 20049, host: 'connect-1.internal' },
      { from: 20060, to: 20099, host: 'connect-2.internal' },
    ];
    expect(uncoveredPorts(blocks, { from: 20000, to: 20099 })).toEqual(['20050-20059']);
  });
});

describe('parseConnectHosts and formatConnectHosts', () => {
  it('read each other back', () => {
    const text = formatConnectHosts(BLOCKS);
    expect(text).toBe('20000-20049=connect-1.internal,20050-20099=connect-2.internal');
    expect(parseConnectHosts(text)).toEqual({ blocks: BLOCKS });
  });

  it('names every bad entry at once', () => {
    const parsed = parseConnectHosts('x,20000-20049=connect-1.internal,1-0=a.internal');
    expect(parsed).toEqual({
      problems: [expect.stringContaining('"x"'), expect.stringContaining('"1-0=a.internal"')],
    });
  });
});

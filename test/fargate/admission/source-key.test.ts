/** What counts as one source: an IPv4 address (also IPv4-mapped), an IPv6 /64. */
import { describe, expect, it } from 'vitest';
import { sourceKeyOf } from '../../../fargate/admission/source-key';

describe('sourceKeyOf', () => {
  it.each([
    ['127.0.0.9', '127.0.0.9'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::FFFF:203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
    ['unknown', 'unknown'],
  ])('%s counts as %s', (address, key) => {
    expect(sourceKeyOf(address)).toBe(key);
  });
});

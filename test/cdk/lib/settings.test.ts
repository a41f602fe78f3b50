/** Deployment settings from CDK context: defaults, `-c` strings, and refusals naming the key. */
import { describe, expect, it } from 'vitest';
import { parseSettings } from '../../../cdk/lib/settings';
import { CDK_JSON_CONTEXT } from '../../helpers/cdk';

describe('parseSettings', () => {
  it('takes the defaults cdk.json spells out', () => {
    const settings = parseSettings(CDK_JSON_CONTEXT);
    expect(settings).toMatchObject({
      secretPrefix: 'tunnelkeeper',
      portRange: { from: 20000, to: 20099 },
      connectBlocks: [
        { from: 20000, to: 20049 },
        { from: 20050, to: 20099 },
      ],
      gatewayTaskCount: 2,
      apiRateLimit: 50,
      apiBurstLimit: 100,
      logLevel: 'info',
    });
    expect(settings.publicSshHost).toBeUndefined();
    expect(settings.alertEmail).toBeUndefined();
  });

  it('reads -c values, which arrive as strings, and ignores keys that are not ours', () => {
    const settings = parseSettings({
      gatewayTaskCount: '3',
      egressEipAllocationIds: 'eipalloc-1, eipalloc-2',
      egressIps: '198.51.100.1, 198.51.100.2',
      publicSshHost: 'tunnels.example.com',
      '@aws-cdk/core:newStyleStackSynthesis': true,
    });
    expect(settings.gatewayTaskCount).toBe(3);
    expect(settings.egressEipAllocationIds).toEqual(['eipalloc-1', 'eipalloc-2']);
    expect(settings.egressIps).toEqual(['198.51.100.1', '198.51.100.2']);
    expect(settings.publicSshHost).toBe('tunnels.example.com');
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['fewer than two gateway tasks', { gatewayTaskCount: 1 }, /gatewayTaskCount/],
    ['an alert address that is not one', { alertEmail: 'on-call' }, /alertEmail/],
    ['a secret prefix with a trailing slash', { secretPrefix: 'tk/' }, /secretPrefix/],
    ['a reversed port range', { tunnelPortRange: '30000-20000' }, /tunnelPortRange/],
    ['a port range over the health port', { tunnelPortRange: '8000-9000' }, /tunnelPortRange.*8080, 8081/],
    [
      'a port range too large for the connect load balancers',
      { tunnelPortRange: '20000-29999' },
      /tunnelPortRange: 10000 tunnel ports need 200 internal load balancers .* give at most 1000 ports/,
    ],
    [
      'a port range that fits 2 gateway tasks but not 20',
      { tunnelPortRange: '20000-20999', gatewayTaskCount: 20 },
      /tunnelPortRange: 1000 tunnel ports need 84 internal load balancers of 12 ports/,
    ],
    ['one egress IP for two AZs', { egressEipAllocationIds: ['eipalloc-1'] }, /egressEipAllocationIds/],
    [
      'egress allocations without their addresses',
      { egressEipAllocationIds: 'eipalloc-1,eipalloc-2' },
      /egressIps: give the addresses of egressEipAllocationIds/,
    ],
    [
      'egress addresses without allocations',
      { egressIps: '198.51.100.1,198.51.100.2' },
      /egressIps: only with/,
    ],
    [
      'an egress address that is not an IPv4 address',
      { egressEipAllocationIds: 'eipalloc-1,eipalloc-2', egressIps: '198.51.100.1,2001:db8::1' },
      /egressIps: not an IPv4 address: "2001:db8::1"/,
    ],
    [
      'fewer egress addresses than allocations',
      { egressEipAllocationIds: 'eipalloc-1,eipalloc-2', egressIps: '198.51.100.1' },
      /egressIps: expected 2/,
    ],
    ['an SSH host with a port', { publicSshHost: 'tunnels.example.com:22' }, /publicSshHost/],
  ])('refuses %s, naming the key', (_, context, message) => {
    expect(() => parseSettings(context)).toThrow(message);
  });
});

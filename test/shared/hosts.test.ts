import { describe, expect, it } from 'vitest';
import { hostProblem } from '../../shared/hosts';
import { HostSchema } from '../../shared/schemas';

const label63 = 'a'.repeat(63);
const longest = [label63, label63, label63, 'b'.repeat(61)].join('.'); // 253 characters

describe('hostProblem', () => {
  it.each([
    ['db.internal.example.com'],
    ['db'],
    ['db_1.internal'],
    ['db.internal.'],
    ['_service._tcp.example.com'],
    ['10.0.0.5'],
    ['::1'],
    ['fd00:1:2::5'],
    ['FE80::1'],
    ['::ffff:10.0.0.5'],
    ['::'],
    [longest],
    [`${longest}.`],
  ])('accepts %s', (host) => {
    expect(hostProblem(host)).toBeUndefined();
    expect(HostSchema.safeParse(host).success).toBe(true);
  });

  it.each([
    ['fe80::1%eth0', /zone id \(%eth0\).*cannot be reached from our network or through a bastion/],
    ['::1%25lo', /zone id \(%25lo\)/],
    ['fe80::1%', /zone id/],
    ['fe80::1%$(id)', /zone id \(%\$\(id\)\)/],
    ['10.0.0.5%eth0', /must not contain %/],
    ['%h', /must not contain %/],
    ['[::1]', /without brackets/],
    ['', /must not be empty/],
    [`${longest}x`, /at most 253 characters \(254 with a trailing dot\)/],
    ['db.internal:5432', /DNS name or an IP address/],
    ['-oProxyCommand=id', /DNS name or an IP address/],
    ['db internal', /DNS name or an IP address/],
    ['$(id)', /DNS name or an IP address/],
    ['`id`', /DNS name or an IP address/],
    ['db;id', /DNS name or an IP address/],
    ['db"x', /DNS name or an IP address/],
    ['db\nx', /DNS name or an IP address/],
    ['db\u0000', /DNS name or an IP address/],
    ['*', /DNS name or an IP address/],
    ['ｄｂ.internal', /DNS name or an IP address/],
    ['db\u202e.internal', /DNS name or an IP address/],
    ['ssh://db', /DNS name or an IP address/],
    ['-db', /DNS name or an IP address/],
    ['..', /DNS name or an IP address/],
  ])('refuses %j', (host, message) => {
    expect(hostProblem(host)).toMatch(message);
    const parsed = HostSchema.safeParse(host);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => i.message)).toEqual([expect.stringMatching(message)]);
  });

  it('never echoes more than 20 characters of a zone id', () => {
    expect(hostProblem(`fe80::1%${'x'.repeat(200)}`)).toMatch(/\(%x{19}…\)/);
  });
});

/**
 * The console's troubleshooting steps (shared/troubleshooting.ts): one entry for every status error
 * code, each documented in docs/troubleshooting.md, each step concrete (the tunnel's own user,
 * hosts and ports in its commands), and the commands safe to paste whatever the tunnel holds.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { StatusErrorCodeSchema } from '../../shared/schemas';
import {
  STATUS_CODE_TITLES,
  type TroubleshootingTunnel,
  troubleshooting,
} from '../../shared/troubleshooting';

const CODES = StatusErrorCodeSchema.options;
const standard: TroubleshootingTunnel = {
  id: 'tun_abcdefghijklmnop',
  type: 'standard',
  service: { host: 'db.internal', port: 5432 },
  ssh: { host: 'bastion.example.com', port: 2222, user: 'tunnelkeeper' },
};
const reverse: TroubleshootingTunnel = {
  id: 'tun_qrstuvwxyzabcdef',
  type: 'reverse',
  service: { host: '10.0.0.5', port: 3306 },
  reverse: { sshHost: 'tunnels.example.com', sshPort: 22 },
};

describe('troubleshooting', () => {
  it.each(CODES)('%s has a title, steps, and a section in docs/troubleshooting.md', async (code) => {
    const docs = await readFile(new URL('../../docs/troubleshooting.md', import.meta.url), 'utf8');
    expect(docs).toContain(`### \`${code}\``);
    expect(STATUS_CODE_TITLES[code].length).toBeGreaterThan(5);
    for (const tunnel of [standard, reverse]) {
      const guide = troubleshooting(code, tunnel);
      expect(guide.steps.length).toBeGreaterThan(0);
      for (const step of guide.steps) expect(step.text.length).toBeGreaterThan(20);
    }
  });

  it('auth_failed names the user, the modes, the log and ssh -v with the bastion', () => {
    const text = JSON.stringify(troubleshooting('auth_failed', standard));
    expect(text).toContain('id tunnelkeeper');
    expect(text).toContain('chmod 700 ~tunnelkeeper/.ssh');
    expect(text).toContain('chmod 600 ~tunnelkeeper/.ssh/authorized_keys');
    expect(text).toContain('journalctl');
    expect(text).toContain('ssh -v -p 2222 tunnelkeeper@bastion.example.com');
  });

  it.each([
    ['forward_denied', 'standard', /AllowTcpForwarding[\s\S]*nc -vz db.internal 5432/],
    ['service_unreachable', 'standard', /On the bastion|bastion[\s\S]*nc -vz db.internal 5432/],
    ['service_unreachable', 'reverse', /nc -vz 10.0.0.5 3306/],
    [
      'customer_not_connected',
      'reverse',
      /tunnelkeeper_tun_qrstuvwxyzabcdef[\s\S]*nc -vz tunnels.example.com 22/,
    ],
  ] as const)('%s (%s tunnel) checks its own service and endpoint', (code, tunnel, pattern) => {
    const guide = troubleshooting(code, tunnel === 'standard' ? standard : reverse);
    expect(JSON.stringify(guide).replaceAll('\\"', '"')).toMatch(pattern);
  });

  it('quotes what the tunnel holds, so a pasted command runs nothing else', () => {
    const hostile = { ...standard, ssh: { host: 'b;rm -rf /', port: 22, user: "u'$(id)" } };
    const commands = troubleshooting('auth_failed', hostile)
      .steps.flatMap((s) => (s.command ? [s.command] : []))
      .join('\n');
    expect(commands).toContain(`'b;rm -rf /'`);
    expect(commands).toContain(`'u'\\''$(id)'`);
    expect(commands.replaceAll(`'b;rm -rf /'`, '')).not.toContain(';rm');
    expect(commands.replaceAll(`'u'\\''$(id)'`, '')).not.toContain('$(id)');
  });
});

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { type ReverseCommandInput, type ReverseCommands, renderReverseCommands } from '../../shared/commands';

const input: ReverseCommandInput = {
  tunnelId: 'tun_abcdefghijklmnop',
  sshHost: 'tunnels.example.com',
  sshPort: 2222,
  remotePort: 20001,
  service: { host: 'db.internal', port: 5432 },
  keepaliveIntervalSec: 15,
};

const KEY_FILE = `.ssh/tunnelkeeper_${input.tunnelId}`;

/** The ssh argument string of each form, with the unit's `%h` read as the shell's `~`. */
function sshArgsOf(commands: ReverseCommands): Record<keyof ReverseCommands, string> {
  const execStart = commands.systemd.split('\n').find((line) => line.startsWith('ExecStart='));
  const strip = (text: string | undefined, prefix: string) => {
    expect(text?.startsWith(prefix), `${text} starts with ${prefix}`).toBe(true);
    return (text ?? '').slice(prefix.length);
  };
  return {
    ssh: strip(commands.ssh, 'ssh '),
    autossh: strip(commands.autossh, 'AUTOSSH_GATETIME=0 AUTOSSH_POLL=30 autossh -M 0 '),
    systemd: strip(execStart, 'ExecStart=/usr/bin/ssh ').replaceAll('%h/', '~/'),
    crontab: strip(commands.crontab, '@reboot AUTOSSH_GATETIME=0 AUTOSSH_POLL=30 autossh -M 0 -f '),
  };
}

/** What OpenSSH makes of the arguments: `ssh -G` resolves the configuration without connecting. */
function sshResolve(args: string): Map<string, string[]> {
  // -F /dev/null: neither ~/.ssh/config nor /etc/ssh/ssh_config may change what we check.
  const out = execFileSync('ssh', ['-F', '/dev/null', '-G', ...args.split(' ')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const config = new Map<string, string[]>();
  for (const line of out.split('\n')) {
    const space = line.indexOf(' ');
    if (space < 0) continue;
    const key = line.slice(0, space);
    config.set(key, [...(config.get(key) ?? []), line.slice(space + 1)]);
  }
  return config;
}

/** `remoteforward` as `ssh -G` prints it: `<listen port> <host>:<port>`, the host bracketed or not by version. */
function remoteForwards(config: Map<string, string[]>) {
  return (config.get('remoteforward') ?? []).map((value) => {
    const match = /^(\d+) \[?([^\]]+)\]?:(\d+)$/.exec(value);
    expect(match, `remoteforward ${value}`).not.toBeNull();
    return { remotePort: Number(match?.[1]), host: match?.[2], port: Number(match?.[3]) };
  });
}

describe('renderReverseCommands', () => {
  const commands = renderReverseCommands(input);

  it('gives all four forms the same ssh arguments', () => {
    const args = sshArgsOf(commands);
    expect(args.autossh).toBe(args.ssh);
    expect(args.systemd).toBe(args.ssh);
    expect(args.crontab).toBe(args.ssh);
  });

  it.each([
    ['-N -T', '-N -T '],
    ['the key file', `-i ~/${KEY_FILE} `],
    ['the port', '-p 2222 '],
    ['IdentitiesOnly', '-o IdentitiesOnly=yes '],
    ['ExitOnForwardFailure', '-o ExitOnForwardFailure=yes '],
    ['ServerAliveInterval', '-o ServerAliveInterval=15 '],
    ['ServerAliveCountMax', '-o ServerAliveCountMax=3 '],
    ['StrictHostKeyChecking', '-o StrictHostKeyChecking=yes '],
    ['the forward', '-R 20001:db.internal:5432 '],
  ])('has %s', (_, fragment) => {
    expect(commands.ssh).toContain(fragment);
  });

  it('ends with the tunnel id as user at the gateway host', () => {
    expect(commands.ssh).toMatch(new RegExp(` ${input.tunnelId}@tunnels\\.example\\.com$`));
  });

  it('never weakens host key checking', () => {
    for (const form of Object.values(commands)) {
      expect(form).not.toMatch(/StrictHostKeyChecking=(no|accept-new)|UserKnownHostsFile=\/dev\/null/);
    }
  });

  it.each([
    ['::1', '-R 20001:[::1]:5432 '],
    ['fd00:1:2::5', '-R 20001:[fd00:1:2::5]:5432 '],
    ['10.0.0.5', '-R 20001:10.0.0.5:5432 '],
  ])('writes the service host %s as %s', (host, fragment) => {
    const rendered = renderReverseCommands({ ...input, service: { host, port: 5432 } });
    for (const args of Object.values(sshArgsOf(rendered))) expect(args).toContain(fragment);
  });

  it('renders a complete systemd user unit that restarts forever with an absolute ssh', () => {
    const lines = commands.systemd.split('\n');
    const sections = lines.filter((line) => /^\[.+\]$/.test(line));
    expect(sections).toEqual(['[Unit]', '[Service]', '[Install]']);
    expect(lines).toContain('Restart=always');
    expect(lines).toContain('StartLimitIntervalSec=0');
    expect(lines).toContain('WantedBy=default.target');
    const execStart = lines.filter((line) => line.startsWith('ExecStart='));
    expect(execStart).toHaveLength(1);
    expect(execStart[0]).toMatch(/^ExecStart=\/usr\/bin\/ssh /);
    // systemd does not expand `~`; `%h` is the user's home.
    expect(execStart[0]).toContain(`-i %h/${KEY_FILE} `);
    expect(execStart[0]).not.toContain('~');
    expect(commands.systemd).toContain(`tunnelkeeper-${input.tunnelId}`);
  });

  it('renders one @reboot crontab line under autossh in the background', () => {
    expect(commands.crontab).toMatch(/^@reboot /);
    expect(commands.crontab).not.toContain('\n');
    expect(commands.crontab).toContain('autossh -M 0 -f ');
    expect(commands.autossh).toMatch(/^AUTOSSH_GATETIME=0 AUTOSSH_POLL=30 autossh -M 0 -N /);
  });

  it.each(['ssh', 'autossh', 'systemd', 'crontab'] as const)(
    'the %s form parses under the real OpenSSH client as intended',
    (form) => {
      const config = sshResolve(sshArgsOf(commands)[form]);
      expect(config.get('user')).toEqual([input.tunnelId]);
      expect(config.get('hostname')).toEqual(['tunnels.example.com']);
      expect(config.get('port')).toEqual(['2222']);
      expect(config.get('exitonforwardfailure')).toEqual(['yes']);
      expect(config.get('serveraliveinterval')).toEqual(['15']);
      expect(config.get('serveralivecountmax')).toEqual(['3']);
      expect(config.get('stricthostkeychecking')).toEqual(['true']);
      expect(config.get('identitiesonly')).toEqual(['yes']);
      expect(remoteForwards(config)).toEqual([{ remotePort: 20001, host: 'db.internal', port: 5432 }]);
      expect(config.get('sessiontype')).toEqual(['none']);
    },
  );

  it.each([
    ['::1', '[::1]:5432'],
    ['fd00:1:2::5', '[fd00:1:2::5]:5432'],
  ])('OpenSSH reads the bracketed IPv6 service %s as one forward', (host, target) => {
    const rendered = renderReverseCommands({
      ...input,
      keepaliveIntervalSec: 30,
      service: { host, port: 5432 },
    });
    const config = sshResolve(sshArgsOf(rendered).ssh);
    expect(config.get('remoteforward')).toEqual([`20001 ${target}`]);
    expect(config.get('serveraliveinterval')).toEqual(['30']);
  });
});

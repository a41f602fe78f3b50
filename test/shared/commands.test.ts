import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { commandTagOf, serviceTagOf } from '../../shared/command-tag';
import {
  type ReverseCommandInput,
  type ReverseCommands,
  renderReverseCommands,
  reverseForwardSpec,
} from '../../shared/commands';
import {
  CUSTOMER_HOME,
  crontabRefusal,
  execStartArgv,
  globTraps,
  parseCronLine,
  requireRenderCheckTools,
  type ShellOutcome,
  shellOutcomes,
  systemdRefusals,
} from '../helpers/render-check';

const input: ReverseCommandInput = {
  tunnelId: 'tun_abcdefghijklmnop',
  sshHost: 'tunnels.example.com',
  sshPort: 2222,
  remotePort: 20001,
  service: { host: 'db.internal', port: 5432 },
  keepaliveIntervalSec: 15,
  hostKeyFingerprint: 'SHA256:0VZnr7bGSIKn9CCYIanZmpp1mq64rw49Muv6qhmDXr0',
};

const KEY_FILE = `.ssh/tunnelkeeper_${input.tunnelId}`;
/** The tag of `db.internal:5432` (command-tag.ts), pinned: a change would mark every running command outdated. */
const TAG = 'tk-64d12f25';
const FORMS = ['ssh', 'autossh', 'systemd', 'crontab'] as const;
type Form = (typeof FORMS)[number];

beforeAll(() => requireRenderCheckTools());

/**
 * The ssh arguments of each form as its real reader passes them on: `sh` for ssh and autossh
 * (next to files an unquoted glob would match), cron's `%` handling then `sh` for the crontab
 * line, systemd's ExecStart rules for the unit (with `%h` read as the home `~` gives). Also fails
 * when `sh -n` finds a syntax error or cron would cut the command short.
 */
async function sshArgsOf(
  commands: ReverseCommands,
  expected: string[] = [],
): Promise<Record<Form, string[]>> {
  const cron = parseCronLine(commands.crontab);
  expect(cron.schedule).toBe('@reboot');
  expect(cron.input, 'cron must not cut the command at a %').toBeUndefined();
  const traps = globTraps(expected);
  const [ssh, autossh, crontab] = await shellOutcomes(
    [commands.ssh, commands.autossh, cron.command],
    ['ssh', 'autossh'],
    traps,
  );
  const strip = (outcome: ShellOutcome | undefined, prefix: string[]) => {
    expect(outcome?.syntaxOk, `${outcome?.command}: ${outcome?.syntaxError}`).toBe(true);
    expect(outcome?.argv?.slice(0, prefix.length)).toEqual(prefix);
    return outcome?.argv?.slice(prefix.length) ?? [];
  };
  const execStart = execStartArgv(commands.systemd);
  expect(execStart[0]).toBe('/usr/bin/ssh');
  return {
    ssh: strip(ssh, ['ssh']),
    autossh: strip(autossh, ['autossh', '-M', '0']),
    systemd: execStart.slice(1),
    crontab: strip(crontab, ['autossh', '-M', '0', '-f']),
  };
}

/** What OpenSSH makes of the arguments: `ssh -G` resolves the configuration without connecting. */
function sshResolve(args: string[]): Map<string, string[]> {
  // -F /dev/null: neither ~/.ssh/config nor /etc/ssh/ssh_config may change what we check.
  const out = execFileSync('ssh', ['-F', '/dev/null', '-G', ...args], {
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

/**
 * `remoteforward` as `ssh -G` prints it: `[<bind address>]:<listen port> <host>:<port>`, the host
 * bracketed or not by version.
 */
function remoteForwards(config: Map<string, string[]>) {
  return (config.get('remoteforward') ?? []).map((value) => {
    const match = /^\[([^\]]+)\]:(\d+) \[?([^\]]+)\]?:(\d+)$/.exec(value);
    expect(match, `remoteforward ${value}`).not.toBeNull();
    return {
      bindAddress: match?.[1],
      remotePort: Number(match?.[2]),
      host: match?.[3],
      port: Number(match?.[4]),
    };
  });
}

/** The ssh arguments every form must pass, with `~` as the checks' customer home. */
const expectedArgs = (over: Partial<ReverseCommandInput> = {}) => {
  const i = { ...input, ...over };
  const host = i.service.host.includes(':') ? `[${i.service.host}]` : i.service.host;
  return [
    '-N',
    '-T',
    '-i',
    `${CUSTOMER_HOME}/.ssh/tunnelkeeper_${i.tunnelId}`,
    '-p',
    String(i.sshPort),
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'ExitOnForwardFailure=yes',
    '-o',
    `ServerAliveInterval=${i.keepaliveIntervalSec}`,
    '-o',
    'ServerAliveCountMax=3',
    '-R',
    `${serviceTagOf(i.service)}:${i.remotePort}:${host}:${i.service.port}`,
    `${i.tunnelId}@${i.sshHost}`,
  ];
};

describe('renderReverseCommands', () => {
  const commands = renderReverseCommands(input);

  it('gives all four forms the same ssh arguments, as sh, cron and systemd read them', async () => {
    const args = await sshArgsOf(commands);
    expect(args.ssh).toEqual(expectedArgs());
    expect(args.autossh).toEqual(args.ssh);
    expect(args.systemd).toEqual(args.ssh);
    expect(args.crontab).toEqual(args.ssh);
  });

  it('renders the commands of a DNS-named service exactly so', () => {
    const args = expectedArgs().join(' ').replace(CUSTOMER_HOME, '~');
    expect(commands.ssh).toBe(`ssh ${args}`);
    expect(commands.autossh).toBe(`AUTOSSH_GATETIME=0 AUTOSSH_POLL=30 autossh -M 0 ${args}`);
    expect(commands.crontab).toBe(`@reboot AUTOSSH_GATETIME=0 AUTOSSH_POLL=30 autossh -M 0 -f ${args}`);
    expect(commands.systemd).toContain(`ExecStart=/usr/bin/ssh ${args.replace('~', '%h')}\n`);
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
    ['the forward, its listen side tagged with the service', `-R ${TAG}:20001:db.internal:5432 `],
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
    ['::1', '20001:[::1]:5432'],
    ['fd00:1:2::5', '20001:[fd00:1:2::5]:5432'],
    ['::ffff:10.0.0.5', '20001:[::ffff:10.0.0.5]:5432'],
    ['10.0.0.5', '20001:10.0.0.5:5432'],
    ['db_1.internal.', '20001:db_1.internal.:5432'],
  ])(
    'passes the service host %s as -R <tag>:%s, next to files its brackets would glob to',
    async (host, untagged) => {
      const forward = `${serviceTagOf({ host, port: 5432 })}:${untagged}`;
      const rendered = renderReverseCommands({ ...input, service: { host, port: 5432 } });
      const expected = expectedArgs({ service: { host, port: 5432 } });
      expect(globTraps(expected).length).toBe(host.includes(':') ? 1 : 0);
      const args = await sshArgsOf(rendered, expected);
      for (const form of FORMS) {
        expect(args[form], form).toEqual(expected);
        expect(args[form][args[form].indexOf('-R') + 1]).toBe(forward);
      }
    },
  );

  it('single-quotes an IPv6 forward for the shell and cron, not for systemd, which does not glob', () => {
    const rendered = renderReverseCommands({ ...input, service: { host: '::1', port: 5432 } });
    const forward = `${serviceTagOf({ host: '::1', port: 5432 })}:20001:[::1]:5432`;
    expect(rendered.ssh).toContain(` -R '${forward}' `);
    expect(rendered.autossh).toContain(` -R '${forward}' `);
    expect(rendered.crontab).toContain(` -R '${forward}' `);
    expect(rendered.systemd).toContain(` -R ${forward} `);
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

  it('writes units that systemd-analyze verifies, with %h a working specifier', async () => {
    const units = [
      commands.systemd,
      renderReverseCommands({ ...input, service: { host: 'fd00:1:2::5', port: 1 } }).systemd,
      renderReverseCommands({ ...input, sshPort: 65535, remotePort: 29999 }).systemd,
    ];
    expect([...(await systemdRefusals(units))]).toEqual([]);
    expect(execStartArgv(commands.systemd)).toContain(`${CUSTOMER_HOME}/${KEY_FILE}`);
    // The same check refuses what systemd refuses: an unknown specifier is fatal.
    const broken = commands.systemd.replace('%h/', '%Z/');
    expect((await systemdRefusals([broken])).size).toBe(1);
  });

  it('renders one @reboot crontab line under autossh in the background, which crontab installs', async () => {
    expect(commands.crontab).toMatch(/^@reboot /);
    expect(commands.crontab).not.toContain('\n');
    expect(commands.crontab).toContain('autossh -M 0 -f ');
    expect(commands.autossh).toMatch(/^AUTOSSH_GATETIME=0 AUTOSSH_POLL=30 autossh -M 0 -N /);
    const ipv6 = renderReverseCommands({ ...input, service: { host: '::1', port: 5432 } }).crontab;
    expect(await crontabRefusal([commands.crontab, ipv6])).toBeUndefined();
    expect(await crontabRefusal(['@rebooot autossh'])).toMatch(/bad|error/i);
  });

  it.each(FORMS)('the %s form parses under the real OpenSSH client as intended', async (form) => {
    const config = sshResolve((await sshArgsOf(commands))[form]);
    expect(config.get('user')).toEqual([input.tunnelId]);
    expect(config.get('hostname')).toEqual(['tunnels.example.com']);
    expect(config.get('port')).toEqual(['2222']);
    expect(config.get('exitonforwardfailure')).toEqual(['yes']);
    expect(config.get('serveraliveinterval')).toEqual(['15']);
    expect(config.get('serveralivecountmax')).toEqual(['3']);
    expect(config.get('stricthostkeychecking')).toEqual(['true']);
    expect(config.get('identitiesonly')).toEqual(['yes']);
    expect(remoteForwards(config)).toEqual([
      { bindAddress: TAG, remotePort: 20001, host: 'db.internal', port: 5432 },
    ]);
    expect(config.get('sessiontype')).toEqual(['none']);
  });

  it.each([
    ['::1', '[::1]:5432'],
    ['fd00:1:2::5', '[fd00:1:2::5]:5432'],
  ])('OpenSSH reads the bracketed IPv6 service %s as one forward in every form', async (host, target) => {
    const over = { keepaliveIntervalSec: 30, service: { host, port: 5432 } };
    const rendered = renderReverseCommands({ ...input, ...over });
    const args = await sshArgsOf(rendered, expectedArgs(over));
    for (const form of FORMS) {
      const config = sshResolve(args[form]);
      expect(config.get('remoteforward'), form).toEqual([
        `[${serviceTagOf({ host, port: 5432 })}]:20001 ${target}`,
      ]);
      expect(config.get('serveraliveinterval')).toEqual(['30']);
    }
  });
});

describe('the service tag in the -R bind address', () => {
  it('is the same for the same service, whatever the case of its host name, and differs for another', () => {
    expect(serviceTagOf({ host: 'db.internal', port: 5432 })).toBe(TAG);
    expect(serviceTagOf({ host: 'DB.Internal', port: 5432 })).toBe(TAG);
    expect(serviceTagOf({ host: 'db.internal', port: 5433 })).not.toBe(TAG);
    expect(serviceTagOf({ host: 'db2.internal', port: 5432 })).not.toBe(TAG);
    expect(serviceTagOf({ host: '::1', port: 5432 })).toMatch(/^tk-[0-9a-f]{8}$/);
  });

  it('is read back from a bind address only when it is one of ours', () => {
    expect(commandTagOf(TAG)).toBe(TAG);
    for (const other of [
      'localhost',
      '',
      '*',
      '127.0.0.1',
      'tk-64D12F25',
      `${TAG}x`,
      'tk-',
      ' tk-64d12f25',
    ]) {
      expect(commandTagOf(other), other).toBeUndefined();
    }
  });

  it('is what reverseForwardSpec, and so every rendered form, puts before the remote port', () => {
    expect(reverseForwardSpec({ remotePort: 20001, service: { host: 'db.internal', port: 5432 } })).toBe(
      `${TAG}:20001:db.internal:5432`,
    );
    expect(reverseForwardSpec({ remotePort: 1, service: { host: 'fd00::5', port: 1 } })).toBe(
      `${serviceTagOf({ host: 'fd00::5', port: 1 })}:1:[fd00::5]:1`,
    );
  });
});

describe('the plink command', () => {
  const plinkArgs = async (rendered: ReverseCommands, expected: string[] = []) => {
    expect(rendered.plink).toBeDefined();
    const [outcome] = await shellOutcomes([rendered.plink ?? ''], ['plink'], globTraps(expected));
    expect(outcome?.syntaxOk, outcome?.syntaxError).toBe(true);
    return outcome?.argv ?? [];
  };
  const expectedPlink = (over: Partial<ReverseCommandInput> = {}) => {
    const i = { ...input, ...over };
    const host = i.service.host.includes(':') ? `[${i.service.host}]` : i.service.host;
    return [
      'plink',
      '-ssh',
      '-batch',
      '-N',
      '-noagent',
      '-hostkey',
      i.hostKeyFingerprint,
      '-i',
      `.ssh/tunnelkeeper_${i.tunnelId}.ppk`,
      '-P',
      String(i.sshPort),
      '-R',
      `${serviceTagOf(i.service)}:${i.remotePort}:${host}:${i.service.port}`,
      `${i.tunnelId}@${i.sshHost}`,
    ];
  };

  it('pins the host key, uses only its .ppk, never prompts, and forwards what ssh forwards', async () => {
    const commands = renderReverseCommands(input);
    expect(await plinkArgs(commands)).toEqual(expectedPlink());
    const ssh = (await sshArgsOf(commands)).ssh;
    expect(expectedPlink()[expectedPlink().indexOf('-R') + 1]).toBe(ssh[ssh.indexOf('-R') + 1]);
    // Nothing in it that cmd.exe or PowerShell would expand or split.
    expect(commands.plink).not.toMatch(/[%$`'&|<>^,]/);
  });

  it('is left out for a service stored before hosts were checked, whose zone id cmd.exe would expand', () => {
    const legacy = renderReverseCommands({ ...input, service: { host: 'fe80::1%eth0', port: 5432 } });
    expect(legacy.plink).toBeUndefined();
    expect(legacy.ssh).toContain('fe80::1%eth0');
  });

  it.each(['::1', 'fd00:1:2::5'])(
    'double-quotes the bracketed IPv6 service %s (cmd.exe, PowerShell and sh all read it)',
    async (host) => {
      const over = { service: { host, port: 5432 } };
      const rendered = renderReverseCommands({ ...input, ...over });
      expect(rendered.plink).toContain(` -R "${serviceTagOf(over.service)}:20001:[${host}]:5432" `);
      expect(await plinkArgs(rendered, expectedPlink(over))).toEqual(expectedPlink(over));
    },
  );
});

/**
 * The commands a customer runs for a reverse tunnel, rendered from one argument list so `ssh`,
 * `autossh`, the systemd unit and the crontab line can never drift apart.
 */

export interface ReverseCommandInput {
  tunnelId: string;
  sshHost: string;
  sshPort: number;
  remotePort: number;
  service: { host: string; port: number };
  keepaliveIntervalSec: number;
}

export interface ReverseCommands {
  ssh: string;
  autossh: string;
  systemd: string;
  crontab: string;
}

const AUTOSSH_ENV = ['AUTOSSH_GATETIME=0', 'AUTOSSH_POLL=30'];

const bracketIpv6 = (host: string) => (host.includes(':') ? `[${host}]` : host);

/**
 * The port and options of every customer command: the host key is checked, never skipped;
 * ExitOnForwardFailure makes a refused -R fatal so supervisors retry; keepalives detect a dead path.
 */
export function customerSshOptions(sshPort: number, keepaliveIntervalSec: number): string[] {
  return [
    '-p',
    String(sshPort),
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'ExitOnForwardFailure=yes',
    '-o',
    `ServerAliveInterval=${keepaliveIntervalSec}`,
    '-o',
    'ServerAliveCountMax=3',
  ];
}

function sshArgs(input: ReverseCommandInput, keyPath: string): string[] {
  return [
    '-N',
    '-T',
    '-i',
    keyPath,
    ...customerSshOptions(input.sshPort, input.keepaliveIntervalSec),
    '-R',
    `${input.remotePort}:${bracketIpv6(input.service.host)}:${input.service.port}`,
    `${input.tunnelId}@${input.sshHost}`,
  ];
}

/** Renders all four commands. Every interpolated value is validated (ids, host names, numbers): no quoting needed. */
export function renderReverseCommands(input: ReverseCommandInput): ReverseCommands {
  const keyFile = `.ssh/tunnelkeeper_${input.tunnelId}`;
  const ssh = ['ssh', ...sshArgs(input, `~/${keyFile}`)].join(' ');
  // -M 0: rely on ServerAlive keepalives instead of autossh's monitor port; GATETIME=0 retries even a
  // first failure; POLL=30 caps autossh's back-off after fast failures (a gateway restarting) at 30 s
  // instead of 10 minutes, and forgives them once a session has lived 10 s.
  const autossh = [...AUTOSSH_ENV, 'autossh', '-M', '0', ...sshArgs(input, `~/${keyFile}`)].join(' ');
  const unit = `tunnelkeeper-${input.tunnelId}`;
  const systemd = [
    `# Save as ~/.config/systemd/user/${unit}.service, then: systemctl --user enable --now ${unit}`,
    '# (and loginctl enable-linger $USER so it runs without a login session)',
    '[Unit]',
    `Description=Tunnelkeeper reverse tunnel ${input.tunnelId}`,
    'After=network-online.target',
    'Wants=network-online.target',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    `ExecStart=/usr/bin/ssh ${sshArgs(input, `%h/${keyFile}`).join(' ')}`,
    'Restart=always',
    'RestartSec=5',
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n');
  const crontab = `@reboot ${[...AUTOSSH_ENV, 'autossh', '-M', '0', '-f', ...sshArgs(input, `~/${keyFile}`)].join(' ')}`;
  return { ssh, autossh, systemd, crontab };
}

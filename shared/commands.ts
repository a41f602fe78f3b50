/**
 * The commands a customer runs for a reverse tunnel, rendered from one argument list so `ssh`,
 * `autossh`, the systemd unit and the crontab line can never drift apart; PuTTY's `plink` (for
 * Windows) shares their `-R`.
 */
import { serviceTagOf } from './command-tag';
import { cronArg, cronHomePath, plinkArg, shellArg, shellHomePath, systemdArg } from './quoting';

export interface ReverseCommandInput {
  tunnelId: string;
  sshHost: string;
  sshPort: number;
  remotePort: number;
  service: { host: string; port: number };
  keepaliveIntervalSec: number;
  /** The endpoint's host key, `SHA256:...`: plink pins it on its command line. */
  hostKeyFingerprint: string;
  /** A further connector's id (connectors.ts): its key file and unit are named after it. */
  connectorId?: string;
}

export interface ReverseCommands {
  ssh: string;
  autossh: string;
  systemd: string;
  crontab: string;
  /** Absent for a service stored before hosts were checked (an IPv6 zone id's `%` means something to cmd.exe). */
  plink?: string;
}

/** A word of a command: literal text, or a path under the user's home (`~` in a shell, `%h` in systemd). */
type Word = string | { home: string };

const bracketIpv6 = (host: string) => (host.includes(':') ? `[${host}]` : host);

/**
 * The `-R` argument of every reverse command (OpenSSH, autossh, PuTTY's plink, Dropbear's dbclient
 * read it alike): `<tag>:<remotePort>:<service host>:<service port>`. The bind address is the
 * service's tag (command-tag.ts): our endpoint never binds it, it only tells which command runs.
 */
export function reverseForwardSpec(input: Pick<ReverseCommandInput, 'remotePort' | 'service'>): string {
  const { remotePort, service } = input;
  return `${serviceTagOf(service)}:${remotePort}:${bracketIpv6(service.host)}:${service.port}`;
}

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

/** The private key's file under ~/.ssh: the tunnel's, or one per further connector. */
export function keyFileOf(input: Pick<ReverseCommandInput, 'tunnelId' | 'connectorId'>): string {
  return input.connectorId
    ? `tunnelkeeper_${input.tunnelId}_${input.connectorId}`
    : `tunnelkeeper_${input.tunnelId}`;
}

function sshArgs(input: ReverseCommandInput): Word[] {
  return [
    '-N',
    '-T',
    '-i',
    { home: `.ssh/${keyFileOf(input)}` },
    ...customerSshOptions(input.sshPort, input.keepaliveIntervalSec),
    '-R',
    reverseForwardSpec(input),
    `${input.tunnelId}@${input.sshHost}`,
  ];
}

/**
 * PuTTY's plink, for Windows: the host key pinned (`-hostkey`, instead of PuTTY's registry cache),
 * the key as a .ppk (puttygen converts an OpenSSH key) under `.ssh` of the folder it runs in (a
 * new Command Prompt or PowerShell starts in the user's profile), Pageant's keys left out
 * (`-noagent`, as IdentitiesOnly), and `-batch` so it fails instead of asking. plink has no
 * keepalive or ExitOnForwardFailure flag; our keepalives still end a dead session on our side.
 */
function plinkOrNothing(input: ReverseCommandInput): string | undefined {
  try {
    return renderPlink(input);
  } catch (err) {
    if (err instanceof RangeError) return undefined;
    throw err;
  }
}

function renderPlink(input: ReverseCommandInput): string {
  const args = [
    '-ssh',
    '-batch',
    '-N',
    '-noagent',
    '-hostkey',
    input.hostKeyFingerprint,
    '-i',
    `.ssh/${keyFileOf(input)}.ppk`,
    '-P',
    String(input.sshPort),
    '-R',
    reverseForwardSpec(input),
    `${input.tunnelId}@${input.sshHost}`,
  ];
  return `plink ${args.map(plinkArg).join(' ')}`;
}

const shellWords = (words: Word[]) =>
  words.map((w) => (typeof w === 'string' ? shellArg(w) : shellHomePath(w.home))).join(' ');
const cronWords = (words: Word[]) =>
  words.map((w) => (typeof w === 'string' ? cronArg(w) : cronHomePath(w.home))).join(' ');
const systemdWords = (words: Word[]) =>
  words.map((w) => (typeof w === 'string' ? systemdArg(w) : systemdArg(w.home, '%h/'))).join(' ');

/**
 * Renders all four commands, each quoted for the programs that read it (shared/quoting.ts): an
 * IPv6 service's brackets are globs to a shell, `%` means something to systemd and to cron.
 */
export function renderReverseCommands(input: ReverseCommandInput): ReverseCommands {
  const args = sshArgs(input);
  const ssh = `ssh ${shellWords(args)}`;
  // -M 0: rely on ServerAlive keepalives instead of autossh's monitor port; GATETIME=0 retries even a
  // first failure; POLL=30 caps autossh's back-off after fast failures (a gateway restarting) at 30 s
  // instead of 10 minutes, and forgives them once a session has lived 10 s.
  const autosshPrefix = 'AUTOSSH_GATETIME=0 AUTOSSH_POLL=30 autossh -M 0';
  const autossh = `${autosshPrefix} ${shellWords(args)}`;
  const unit = input.connectorId
    ? `tunnelkeeper-${input.tunnelId}-${input.connectorId}`
    : `tunnelkeeper-${input.tunnelId}`;
  const systemd = [
    `# Save as ~/.config/systemd/user/${unit}.service, then: systemctl --user enable --now ${unit}`,
    '# (and loginctl enable-linger $USER so it runs without a login session)',
    '[Unit]',
    `Description=Tunnelkeeper reverse tunnel ${input.tunnelId}${input.connectorId ? ` (connector ${input.connectorId})` : ''}`,
    'After=network-online.target',
    'Wants=network-online.target',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    `ExecStart=/usr/bin/ssh ${systemdWords(args)}`,
    'Restart=always',
    'RestartSec=5',
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n');
  const crontab = `@reboot ${autosshPrefix} -f ${cronWords(args)}`;
  const plink = plinkOrNothing(input);
  return { ssh, autossh, systemd, crontab, ...(plink ? { plink } : {}) };
}

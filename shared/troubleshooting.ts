/**
 * What to check, per status error code, written for the console's troubleshooting panel: each step
 * a thing to look at with, where one exists, the exact command to run, filled in with the tunnel's
 * own user, hosts and ports. Pure (no I/O, nothing Node-only): the browser bundle imports it.
 * docs/troubleshooting.md explains the same codes at length; test/shared/troubleshooting.test.ts
 * holds the two to the same codes.
 */
import type { StatusErrorCode } from './schemas';

/** What of the tunnel the steps name (a subset of its API object). */
export interface TroubleshootingTunnel {
  id: string;
  type: 'standard' | 'reverse';
  service: { host: string; port: number };
  ssh?: { host: string; port: number; user: string };
  reverse?: { sshHost: string; sshPort: number };
}

export interface TroubleshootingStep {
  /** What to check, in a sentence. */
  text: string;
  /** Where to run `command`: the bastion, the customer's host running ssh, or anywhere. */
  where?: 'bastion' | 'customer host' | 'your machine';
  /** A command to run as written. */
  command?: string;
}

export interface Troubleshooting {
  /** The code in words, for a status line. */
  title: string;
  steps: TroubleshootingStep[];
}

/** The code in words: what a customer reads beside the red dot. */
export const STATUS_CODE_TITLES: Record<StatusErrorCode, string> = {
  customer_not_connected: 'Your ssh is not connected',
  customer_timeout: 'Your ssh stopped answering',
  ssh_dns_failed: "The bastion's name does not resolve",
  ssh_unreachable: 'The bastion does not answer',
  ssh_refused: 'The bastion refused the connection',
  ssh_host_forbidden: 'The bastion address is not allowed',
  host_key_mismatch: "The bastion's host key changed",
  auth_failed: 'The bastion refused our key',
  forward_denied: 'The bastion refused to forward',
  service_unreachable: 'The service does not answer',
  connection_lost: 'The connection dropped',
  worker_lost: 'The gateway holding it stopped',
};

/** `host:port`, IPv6 in brackets. */
const hostPort = (host: string, port: number) =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;

/** A word safe in a POSIX shell command as shown (quoted unless plainly safe). */
const sh = (word: string) =>
  /^[A-Za-z0-9@%_+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;

export function troubleshooting(code: StatusErrorCode, tunnel: TroubleshootingTunnel): Troubleshooting {
  const title = STATUS_CODE_TITLES[code];
  const svc = tunnel.service;
  const service = hostPort(svc.host, svc.port);
  const ssh = tunnel.ssh;
  const user = ssh ? sh(ssh.user) : 'tunnel';
  const bastion = ssh ? sh(ssh.host) : 'bastion';
  const bastionPort = ssh?.port ?? 22;
  const keyFile = `~/.ssh/tunnelkeeper_${tunnel.id}`;
  const endpoint = tunnel.reverse ? `${sh(tunnel.reverse.sshHost)} ${tunnel.reverse.sshPort}` : '';

  const sshVerbose: TroubleshootingStep = {
    text: 'Log in by hand with -v as we do: the last lines name the step that fails.',
    where: 'your machine',
    command: `ssh -v -p ${bastionPort} ${user}@${bastion} -N -o BatchMode=yes`,
  };
  const bastionReachesService: TroubleshootingStep = {
    text: 'The bastion itself must reach the service: this should print "succeeded".',
    where: 'bastion',
    command: `nc -vz ${sh(svc.host)} ${svc.port}`,
  };
  const runnerReachesService: TroubleshootingStep = {
    text: 'The host running ssh must reach the service: this should print "succeeded".',
    where: 'customer host',
    command: `nc -vz ${sh(svc.host)} ${svc.port}`,
  };

  switch (code) {
    case 'customer_not_connected':
      return {
        title,
        steps: [
          {
            text: 'Is the tunnel process running on your host?',
            where: 'customer host',
            command: `pgrep -af tunnelkeeper_${tunnel.id}`,
          },
          {
            text: `The private key must be at ${keyFile}, readable by you alone (mode 600).`,
            where: 'customer host',
            command: `ls -l ${keyFile} && chmod 600 ${keyFile}`,
          },
          {
            text: 'Run the ssh command from this page in a terminal and read its last line: "Permission denied (publickey)" means another key (a rotation, or the wrong file); "Host key verification failed" means the known_hosts line is missing; "remote port forwarding failed" means an old command: copy it again.',
            where: 'customer host',
          },
          {
            text: 'Outbound connections to our endpoint must be allowed by your firewall: this should print "succeeded".',
            where: 'customer host',
            command: `nc -vz ${endpoint}`,
          },
          {
            text: 'To have it come back by itself after a reboot or a network drop, use the autossh, systemd or crontab tab instead of plain ssh.',
          },
        ],
      };
    case 'customer_timeout':
      return {
        title,
        steps: [
          {
            text: 'Check that the host running ssh is up and not asleep or suspended.',
            where: 'customer host',
          },
          {
            text: 'A NAT or firewall that forgets idle connections drops the session silently: the commands send keepalives; use autossh or systemd so it reconnects by itself.',
          },
          {
            text: 'Is the process still there?',
            where: 'customer host',
            command: `pgrep -af tunnelkeeper_${tunnel.id}`,
          },
        ],
      };
    case 'ssh_dns_failed':
      return {
        title,
        steps: [
          {
            text: 'Check the bastion host name for typos.',
            where: 'your machine',
            command: `getent hosts ${bastion}`,
          },
          {
            text: 'The name must be in public DNS: a name that only your internal resolver knows does not resolve for us.',
            where: 'your machine',
            command: `dig +short ${bastion} @1.1.1.1`,
          },
        ],
      };
    case 'ssh_unreachable':
      return {
        title,
        steps: [
          {
            text: `Allow inbound TCP to port ${bastionPort} of the bastion from the egress IPs listed on this page (security group, firewall, cloud ACL).`,
          },
          {
            text: 'Check that the bastion is running and reachable from outside your network.',
            where: 'your machine',
            command: `nc -vz -w 5 ${bastion} ${bastionPort}`,
          },
        ],
      };
    case 'ssh_refused':
      return {
        title,
        steps: [
          {
            text: 'Check that sshd runs on the bastion.',
            where: 'bastion',
            command: 'sudo systemctl status ssh sshd',
          },
          {
            text: `sshd must listen on port ${bastionPort} (the port set for this tunnel).`,
            where: 'bastion',
            command: `sudo ss -ltnp | grep ':${bastionPort} '`,
          },
        ],
      };
    case 'ssh_host_forbidden':
      return {
        title,
        steps: [
          {
            text: "Use the bastion's public address or name: private, loopback and link-local addresses are not reachable from the platform.",
          },
        ],
      };
    case 'host_key_mismatch':
      return {
        title,
        steps: [
          {
            text: 'Compare the fingerprint in the message with the bastion\'s real one. If you rebuilt or replaced the bastion, paste the new fingerprint into "Pinned host key" below; otherwise treat this as a possible interception and change nothing.',
            where: 'bastion',
            command: 'for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf "$k"; done',
          },
        ],
      };
    case 'auth_failed':
      return {
        title,
        steps: [
          { text: `The user ${user} must exist on the bastion.`, where: 'bastion', command: `id ${user}` },
          {
            text: "The tunnel's authorized_keys line (shown on this page; after a rotation, the new one) must be in that user's authorized_keys, whole, on one line.",
            where: 'bastion',
            command: `sudo grep -c ${sh(tunnel.id)} ~${user}/.ssh/authorized_keys`,
          },
          {
            text: 'sshd ignores the file unless .ssh is 700 and authorized_keys 600, both owned by the user.',
            where: 'bastion',
            command: `sudo chown -R ${user}: ~${user}/.ssh && sudo chmod 700 ~${user}/.ssh && sudo chmod 600 ~${user}/.ssh/authorized_keys`,
          },
          {
            text: 'The bastion\'s log names the exact reason ("Authentication refused: bad ownership or modes", "Bad options", "Invalid user").',
            where: 'bastion',
            command: 'sudo journalctl -u ssh -u sshd --since -10min | tail -20',
          },
          sshVerbose,
        ],
      };
    case 'forward_denied':
      return {
        title,
        steps: [
          {
            text: 'TCP forwarding must be allowed for this user (AllowTcpForwarding yes or local; check Match blocks too).',
            where: 'bastion',
            command: `sudo sshd -T -C user=${user},host=tunnelkeeper,addr=127.0.0.1 | grep -Ei 'allowtcpforwarding|permitopen'`,
          },
          {
            text: `Any PermitOpen or permitopen must name exactly ${service}; after changing the service, install the new authorized_keys line.`,
          },
          bastionReachesService,
        ],
      };
    case 'service_unreachable':
      return tunnel.type === 'standard'
        ? {
            title,
            steps: [
              bastionReachesService,
              {
                text: `The service must listen on ${service} (not only on localhost of its own machine), and its security group or firewall must allow the bastion.`,
              },
              {
                text: `${svc.host} may resolve differently on the bastion than where you looked.`,
                where: 'bastion',
                command: `getent hosts ${sh(svc.host)}`,
              },
            ],
          }
        : {
            title,
            steps: [
              runnerReachesService,
              {
                text: `The service must listen on ${service} as seen from the host running ssh (a container port must be published; a database bound to another interface is not reachable).`,
              },
            ],
          };
    case 'connection_lost':
      return {
        title,
        steps: [
          {
            text:
              tunnel.type === 'standard'
                ? 'The bastion restarted or the network dropped: the tunnel reconnects by itself with backoff. If it stays down, the status changes to the cause.'
                : 'Your ssh session ended: a reconnecting runner (autossh, systemd) brings it back by itself.',
          },
        ],
      };
    case 'worker_lost':
      return {
        title,
        steps: [
          {
            text: 'The gateway worker holding this tunnel stopped reporting. Another worker takes standard tunnels over within seconds; reverse tunnels come back when your runner reconnects. If it lasts, it is ours to fix, not yours.',
          },
        ],
      };
  }
}

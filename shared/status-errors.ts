/**
 * Status errors as customers see them: a stable code, a message with the specifics, and a hint
 * that says what to fix. Hints come from real troubleshooting of SSH tunnels.
 */
import type { StatusError } from './schemas';

export const customerNotConnected = (detail: string): StatusError => ({
  code: 'customer_not_connected',
  message: `no customer ssh session holds the reverse tunnel: ${detail}`,
  hint:
    'Run reverse.commands.autossh or install reverse.commands.systemd on a host that can reach the service, ' +
    'so the tunnel reconnects by itself; check its output for "Permission denied" or "remote port forwarding failed".',
});

/** A reverse tunnel's session closed by a gateway's clean shutdown (a deploy or a restart). */
export const gatewayRestarted = (at: string): StatusError =>
  customerNotConnected(`the gateway closed the session at ${at} to restart (a deploy or a restart)`);

export const customerTimeout = (seconds: number, from: string): StatusError => ({
  code: 'customer_timeout',
  message: `the customer ssh session from ${from} stopped answering keepalives for ${seconds} s`,
  hint:
    'The customer host or its network went silent: check that the host is up, that the ssh process is not ' +
    'suspended, and that outbound connections to the tunnel endpoint are allowed by its firewall.',
});

export const serviceUnreachable = (service: string, reason: string): StatusError => ({
  code: 'service_unreachable',
  message: `the service ${service} did not accept a connection from the customer side: ${reason}`,
  hint: 'Check that the service runs and listens on that host and port, as seen from the host running ssh.',
});

/** `host:port` as customers write it (IPv6 in brackets). */
export const hostPort = (host: string, port: number): string =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;

export const sshDnsFailed = (host: string, reason: string): StatusError => ({
  code: 'ssh_dns_failed',
  message: `the bastion host name ${host} does not resolve (${reason})`,
  hint: 'Check the spelling of ssh.host and that the name is published in public DNS (not only on your internal resolver).',
});

export const sshUnreachable = (target: string, reason: string): StatusError => ({
  code: 'ssh_unreachable',
  message: `no answer from the bastion at ${target} (${reason})`,
  hint:
    "Allow inbound TCP to the bastion's SSH port from the platform's egress IPs (GET /v1/info lists them) in its security group or firewall, " +
    'and check that the bastion is running.',
});

export const sshRefused = (target: string): StatusError => ({
  code: 'ssh_refused',
  message: `the bastion at ${target} refused the TCP connection`,
  hint: 'Check that sshd runs on the bastion and listens on ssh.port (22 unless you changed it).',
});

export const sshHostForbidden = (host: string, address: string, kind: string): StatusError => ({
  code: 'ssh_host_forbidden',
  message: `the bastion ${host} resolves to ${address}, a ${kind} address, which tunnels may not target`,
  hint: "Use the bastion's public address; private, loopback and link-local addresses are not reachable from the platform.",
});

export const hostKeyMismatch = (target: string, pinned: string, presented: string): StatusError => ({
  code: 'host_key_mismatch',
  message: `the bastion at ${target} presented host key ${presented}, but ${pinned} is pinned`,
  hint:
    'If you replaced or rebuilt the bastion, set ssh.hostKeyFingerprint to the new fingerprint ' +
    '(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the bastion); otherwise treat this as a possible attack.',
});

/**
 * `keys`: fingerprints of the keys offered, to find in the bastion's log. The hint does not claim
 * the line is missing: a bastion also refuses a key whose line it cannot read (options it does not
 * know, a key type it lacks), and only its log says which.
 */
export const authFailed = (
  user: string,
  target: string,
  method: string,
  keys: string[] = [],
): StatusError => ({
  code: 'auth_failed',
  message:
    `the bastion at ${target} rejected ${method} authentication for user ${user}` +
    (keys.length > 0 ? ` (key ${keys.join(', ')})` : ''),
  hint:
    method === 'password'
      ? "Check the user and password, and that PasswordAuthentication is enabled in the bastion's sshd_config."
      : `Check that ~${user}/.ssh/authorized_keys on the bastion holds the tunnel's authorizedKeysLine (after a rotation, ` +
        'the new one), that ssh.user is right, and that the .ssh directory (700) and authorized_keys (600) belong to ' +
        'that user. If the line is there, the bastion refused it: its log says why (OpenSSH: "Bad options", ' +
        '"Authentication refused"; Dropbear: "Bad public key options", "must be owned by user or root").',
});

export const forwardDenied = (target: string, service: string): StatusError => ({
  code: 'forward_denied',
  message: `the bastion at ${target} refused to forward to ${service} (administratively prohibited)`,
  hint:
    'Allow TCP forwarding for this user in sshd_config (AllowTcpForwarding yes, or local) and make sure any ' +
    `permitopen/PermitOpen names exactly ${service}.`,
});

export const serviceUnreachableFromBastion = (
  target: string,
  service: string,
  reason: string,
): StatusError => ({
  code: 'service_unreachable',
  message: `the bastion at ${target} could not connect to ${service}: ${reason}`,
  hint:
    'Check that the service listens on that address and port as seen from the bastion, and that its security ' +
    'group or firewall allows the bastion.',
});

export const connectionLost = (target: string, reason: string): StatusError => ({
  code: 'connection_lost',
  message: `the SSH session to the bastion at ${target} ended: ${reason}`,
  hint: 'The bastion restarted or the network dropped; the tunnel reconnects by itself with backoff.',
});

/** A standard tunnel handed over by a gateway's clean shutdown; another worker reconnects it. */
export const handedOver = (target: string): StatusError =>
  connectionLost(
    target,
    'the gateway worker holding it shut down (a deploy or a restart) and handed it over',
  );

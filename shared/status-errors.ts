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

/**
 * What makes a reverse command identifiable. `ssh -R` carries only the listen side to us (bind
 * address and port); the target the customer's client forwards to never reaches the server. So
 * every command we render puts a short tag derived from the service in the bind address
 * (`-R tk-1a2b3c4d:<remotePort>:<service>`), which OpenSSH, PuTTY's plink and Dropbear's dbclient
 * all send as given in their `tcpip-forward` request. The endpoint records the tag of each session;
 * a tag other than the current service's means the customer runs a command issued before the
 * service changed (`command_outdated`).
 */
import { createHash } from 'node:crypto';

const TAG_PREFIX = 'tk-';
const TAG_PATTERN = /^tk-[0-9a-f]{8}$/;

/** The tag of commands forwarding to `service`: `tk-` and 8 hex digits of a hash of host and port. */
export function serviceTagOf(service: { host: string; port: number }): string {
  // Host names compare without case (DNS), so a change of case is no new target.
  const digest = createHash('sha256').update(`${service.host.toLowerCase()}\n${service.port}`).digest('hex');
  return `${TAG_PREFIX}${digest.slice(0, 8)}`;
}

/**
 * The tag a session's `tcpip-forward` bind address carries, or undefined for one that carries none
 * (a command from before tags, or one written by hand: `localhost`, `""`, an address).
 */
export function commandTagOf(bindAddress: string): string | undefined {
  return TAG_PATTERN.test(bindAddress) ? bindAddress : undefined;
}

/**
 * Which host names we accept for a bastion, a service or our own public SSH host. One predicate for
 * the request schemas and the renderers (authorized_keys, known_hosts, customer commands), so that
 * a host the API stores can always be rendered.
 */
import { isIP } from 'node:net';

/** RFC 1035's 253 characters of a name, plus the trailing dot of a fully qualified one. */
export const MAX_HOST_LENGTH = 254;
export const HOST_TOO_LONG = 'must be at most 253 characters (254 with a trailing dot)';

// RFC 1123 host name labels; underscores tolerated because internal DNS uses them.
const HOSTNAME =
  /^(?=.{1,253}\.?$)[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?(?:\.[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*\.?$/;

/** Why `host` is not a host we can use, in words for the customer; `undefined` when it is fine. */
export function hostProblem(host: string): string | undefined {
  if (host.length === 0) return 'must not be empty';
  if (host.length > (host.endsWith('.') ? MAX_HOST_LENGTH : MAX_HOST_LENGTH - 1)) return HOST_TOO_LONG;
  const percent = host.indexOf('%');
  if (percent > 0 && isIP(host.slice(0, percent)) === 6) {
    // Node's isIP accepts `fe80::1%eth0`, but a zone names an interface of one machine: ours has no
    // such interface, and a bastion's interface names mean nothing in a request we send it.
    return (
      `is an IPv6 address with a zone id (${zoneOf(host, percent)}), which only means something on ` +
      'the machine that owns that interface; it cannot be reached from our network or through a ' +
      'bastion: give a routable address or a DNS name, without %'
    );
  }
  if (/^\[.*\]$/.test(host) && isIP(host.slice(1, -1)) === 6) {
    return 'must be an IPv6 address without brackets, e.g. fd00::5';
  }
  if (host.includes('%')) return 'must not contain %';
  if (isIP(host) !== 0 || HOSTNAME.test(host)) return undefined;
  return 'must be a DNS name or an IP address, without spaces, port, scheme or shell characters';
}

/** `%<zone>` for a message: printable ASCII only, at most 20 characters. */
function zoneOf(host: string, percent: number): string {
  const zone = host.slice(percent).replace(/[^\x21-\x7e]/g, '?');
  return zone.length > 20 ? `${zone.slice(0, 20)}…` : zone;
}

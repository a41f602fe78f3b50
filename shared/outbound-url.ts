/**
 * The SSRF guard for URLs customers give us (alert channels): where our network may be made to
 * send a request. Checked when the URL is stored and again on the resolved address of every send
 * (outbound-http.ts pins the connection to the address it checked, so a name that resolves to a
 * public address at create time and to a private one later, DNS rebinding, is refused then).
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { forbiddenAddressKind } from './ssrf';

export interface OutboundPolicy {
  /**
   * Loopback, private, link-local and metadata targets, and plain `http`, allowed: `npm start`'s
   * default (`ALLOW_PRIVATE_SSH_HOSTS`), never in AWS, where sends are `https` to public addresses.
   */
  allowPrivate: boolean;
}

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Name resolution, injectable for tests; the default asks the system resolver for every address. */
export type Resolve = (host: string) => Promise<ResolvedAddress[]>;

/** How long a name may take to resolve: the system resolver's own retries can take much longer. */
export const RESOLVE_TIMEOUT_MS = 5_000;

export const systemResolve: Resolve = async (host) => {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(Object.assign(new Error(`no answer within ${RESOLVE_TIMEOUT_MS} ms`), { code: 'ETIMEOUT' })),
      RESOLVE_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([dnsLookup(host, { all: true, verbatim: true }), deadline]);
  } finally {
    clearTimeout(timer);
  }
};

/** A send refused by the policy: never retried into the same answer, never a crash. */
export class OutboundRefusedError extends Error {
  override name = 'OutboundRefusedError';
}

/** The host did not resolve (now): worth another try later, unlike a refusal. */
export class OutboundResolveError extends Error {
  override name = 'OutboundResolveError';
}

/** The longest URL we store and send to (a Slack webhook URL is about 80 characters). */
export const MAX_URL_LENGTH = 2048;

/** What is wrong with `raw` before any name is resolved, or undefined. */
export function urlProblem(raw: string, policy: OutboundPolicy): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be an absolute URL, e.g. https://hooks.example.com/tunnelkeeper';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an https URL';
  if (url.protocol === 'http:' && !policy.allowPrivate) {
    return 'must use https (plain http is allowed only where private targets are, for local testing)';
  }
  // Credentials in a URL end up in logs and proxies; receivers authenticate by the signature.
  if (url.username || url.password) return 'must not contain a user name or password';
  const host = hostOf(url);
  if (host === '') return 'must name a host';
  if (isIP(host) !== 0) {
    const kind = forbiddenAddressKind(host);
    if (kind && !policy.allowPrivate) return `must not point at a ${kind} address (${host})`;
  }
  return undefined;
}

/**
 * The addresses `host` may be reached at under `policy`; `OutboundRefusedError` when any of them
 * is forbidden (a name with one private address among public ones is refused whole: the connection
 * might pick it); `OutboundResolveError` when it does not resolve.
 */
export async function allowedAddresses(
  host: string,
  policy: OutboundPolicy,
  resolve: Resolve = systemResolve,
): Promise<ResolvedAddress[]> {
  const family = isIP(host);
  const found = family !== 0 ? [{ address: host, family }] : await resolveOrRefuse(host, resolve);
  if (found.length === 0) throw new OutboundResolveError(`${host} does not resolve to any address`);
  if (policy.allowPrivate) return found;
  for (const { address } of found) {
    const kind = forbiddenAddressKind(address);
    if (kind) {
      throw new OutboundRefusedError(
        family !== 0
          ? `${host} is a ${kind} address, which alert channels may not target`
          : `${host} resolves to ${address}, a ${kind} address, which alert channels may not target`,
      );
    }
  }
  return found;
}

/** Full check at create time: the URL itself, then where its host resolves now. */
export async function checkOutboundUrl(
  raw: string,
  policy: OutboundPolicy,
  resolve: Resolve = systemResolve,
): Promise<string | undefined> {
  const problem = urlProblem(raw, policy);
  if (problem) return problem;
  try {
    await allowedAddresses(hostOf(new URL(raw)), policy, resolve);
    return undefined;
  } catch (err) {
    if (err instanceof OutboundRefusedError || err instanceof OutboundResolveError) return err.message;
    throw err;
  }
}

/** The URL's host without the brackets of an IPv6 literal. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

async function resolveOrRefuse(host: string, resolve: Resolve): Promise<ResolvedAddress[]> {
  try {
    return await resolve(host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'failed';
    throw new OutboundResolveError(`${host} does not resolve (${code})`, { cause: err });
  }
}

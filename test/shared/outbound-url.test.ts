/**
 * The SSRF guard for customer URLs: what is refused before any name is resolved, what is refused
 * after (a name that resolves to a forbidden address), and what a send does with a name that
 * resolved to a public address at create time and to loopback at send time (DNS rebinding).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundFailedError, postOutbound } from '../../shared/outbound-http';
import { checkOutboundUrl, type Resolve, urlProblem } from '../../shared/outbound-url';

const STRICT = { allowPrivate: false };
const LOCAL = { allowPrivate: true };

/** A resolver that answers from a table (and counts the questions), like a DNS server we control. */
function fakeDns(table: Record<string, string[]>) {
  const asked: string[] = [];
  const resolve: Resolve = async (host) => {
    asked.push(host);
    const found = table[host];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { resolve, asked };
}

describe('urlProblem', () => {
  it.each([
    ['https://127.0.0.1/hook', 'loopback'],
    ['https://169.254.169.254/latest/meta-data/', 'link-local (cloud metadata)'],
    ['https://10.0.0.1/hook', 'private'],
    ['https://[::1]/hook', 'loopback'],
    ['https://[::ffff:127.0.0.1]/hook', 'loopback'],
    ['https://2130706433/hook', 'loopback'],
    ['https://[fd00::1]/hook', 'private (unique local)'],
    ['https://0.0.0.0/hook', 'unspecified'],
  ])('refuses %s (%s) when private targets are not allowed', (url, kind) => {
    expect(urlProblem(url, STRICT)).toContain(kind);
    expect(urlProblem(url.replace('https:', 'http:'), LOCAL)).toBeUndefined();
  });

  it.each([
    ['http://hooks.example.com/x', 'must use https'],
    ['ftp://hooks.example.com/x', 'must be an https URL'],
    ['file:///etc/passwd', 'must be an https URL'],
    ['https://user:pw@hooks.example.com/x', 'user name or password'],
    ['not a url', 'absolute URL'],
  ])('refuses %s: %s', (url, message) => {
    expect(urlProblem(url, STRICT)).toContain(message);
  });

  it('allows plain http only where private targets are allowed (npm start, tests)', () => {
    expect(urlProblem('http://hooks.example.com/x', LOCAL)).toBeUndefined();
    expect(urlProblem('https://hooks.example.com/x', STRICT)).toBeUndefined();
  });
});

describe('checkOutboundUrl', () => {
  it('refuses a name that resolves to loopback, through the system resolver (localhost)', async () => {
    expect(await checkOutboundUrl('https://localhost:8443/hook', STRICT)).toMatch(
      /localhost resolves to (127\.0\.0\.1|::1), a loopback address/,
    );
  });

  it('refuses a name with one forbidden address among public ones', async () => {
    const dns = fakeDns({ 'mixed.example.com': ['203.0.113.7', '10.1.2.3'] });
    expect(await checkOutboundUrl('https://mixed.example.com/', STRICT, dns.resolve)).toContain(
      '10.1.2.3, a private address',
    );
  });

  it('refuses a name that does not resolve, saying so', async () => {
    const dns = fakeDns({});
    expect(await checkOutboundUrl('https://nowhere.example.com/', STRICT, dns.resolve)).toContain(
      'nowhere.example.com does not resolve (ENOTFOUND)',
    );
  });

  it('accepts a name that resolves to public addresses only', async () => {
    const dns = fakeDns({ 'hooks.example.com': ['203.0.113.7', '2001:db8::7'] });
    expect(await checkOutboundUrl('https://hooks.example.com/', STRICT, dns.resolve)).toBeUndefined();
  });
});

describe('postOutbound', () => {
  let server: Server;
  let port: number;
  let hits = 0;
  let answer: (res: import('node:http').ServerResponse) => void = (res) => res.writeHead(200).end('fine');

  beforeAll(async () => {
    server = createServer((req, res) => {
      hits++;
      req.resume();
      req.on('end', () => answer(res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const post = (url: string, over: Partial<Parameters<typeof postOutbound>[0]> = {}) =>
    postOutbound({
      url,
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
      timeoutMs: 2_000,
      maxResponseBytes: 64,
      policy: LOCAL,
      ...over,
    });

  it('refuses at send time a name that now resolves to loopback (DNS rebinding), without connecting', async () => {
    const dns = fakeDns({ 'rebind.example.com': ['203.0.113.7'] });
    // At create time the name was public...
    expect(
      await checkOutboundUrl(`https://rebind.example.com:${port}/`, STRICT, dns.resolve),
    ).toBeUndefined();
    // ...then it points at us. (http here only so that a connection, if one were made, would land.)
    const rebound = fakeDns({ 'rebind.example.com': ['127.0.0.1'] });
    const before = hits;
    const err = await post(`http://rebind.example.com:${port}/`, {
      policy: { allowPrivate: false },
      resolve: rebound.resolve,
    }).catch((e: unknown) => e);
    // Plain http is refused first under the strict policy; over https, the address is.
    expect(err).toBeInstanceOf(OutboundFailedError);
    const https = await post(`https://rebind.example.com:${port}/`, {
      policy: { allowPrivate: false },
      resolve: rebound.resolve,
    }).catch((e: unknown) => e);
    expect(https).toBeInstanceOf(OutboundFailedError);
    expect((https as OutboundFailedError).isRefused).toBe(true);
    expect((https as OutboundFailedError).message).toContain('resolves to 127.0.0.1, a loopback address');
    expect(rebound.asked).toEqual(['rebind.example.com']);
    expect(hits).toBe(before);
  });

  it('connects to the very address it checked (one resolution per send)', async () => {
    const dns = fakeDns({ 'receiver.test': ['127.0.0.1'] });
    const res = await post(`http://receiver.test:${port}/`, { resolve: dns.resolve });
    expect(res).toMatchObject({ status: 200, body: 'fine' });
    expect(dns.asked).toEqual(['receiver.test']);
  });

  it('does not follow a redirect, even to an allowed address', async () => {
    answer = (res) => res.writeHead(302, { Location: `http://127.0.0.1:${port}/elsewhere` }).end();
    const before = hits;
    const res = await post(`http://127.0.0.1:${port}/`);
    expect(res.status).toBe(302);
    expect(hits).toBe(before + 1);
  });

  it('reads at most maxResponseBytes of the answer', async () => {
    answer = (res) => {
      res.writeHead(200);
      res.write('x'.repeat(1_000));
      // Never ends: the sender must stop reading by itself.
    };
    const res = await post(`http://127.0.0.1:${port}/`, { maxResponseBytes: 64 });
    expect(res.body).toBe('x'.repeat(64));
  });

  it('gives up on a receiver that never answers, at the deadline', async () => {
    answer = () => {};
    const started = Date.now();
    const err = await post(`http://127.0.0.1:${port}/`, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutboundFailedError);
    expect((err as OutboundFailedError).message).toBe('no answer within 300 ms');
    expect((err as OutboundFailedError).isRefused).toBe(false);
    expect(Date.now() - started).toBeLessThan(5_000);
    server.closeAllConnections();
  });
});

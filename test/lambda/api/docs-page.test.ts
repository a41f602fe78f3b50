/**
 * `GET /docs` (issue 14): the API reference rendered from the app's own `/openapi.json` in a real
 * browser (Debian's Chromium), with every file the page needs served by the API itself: the page
 * asks no other host for anything, its Content-Security-Policy holds, and nothing logs an error.
 * Then the assets over plain HTTP: the allow-list, content types, caching and gzip.
 */
import { gunzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_BUNDLE_PACKAGE_FILES } from '../../../cdk/lib/bundles';
import { acceptsGzip, DOCS_ASSET_NAMES, DOCS_PACKAGE_FILES } from '../../../lambda/api/routes/docs';
import { createTestApi } from '../../helpers/api';
import { type Listening, launchChromium, listen } from '../../helpers/browser';
import { Cleanups } from '../../helpers/cleanups';

type Api = Awaited<ReturnType<typeof createTestApi>>;
// biome-ignore lint/suspicious/noExplicitAny: OpenAPI JSON is probed field by field
type Json = any;

const cleanups = new Cleanups();
let api: Api;
let server: Listening;
let browser: Browser;
let doc: Json;

beforeAll(async () => {
  // The browser starts while the table is made: the two slow steps overlap.
  [api, browser] = await Promise.all([
    cleanups.started(createTestApi(), (a) => a.close()),
    cleanups.started(launchChromium(), (b) => b.close()),
  ]);
  server = await cleanups.started(listen(api.app.fetch), (s) => s.close());
  doc = (await api.call('GET', '/openapi.json', undefined)).json;
});

afterAll(() => cleanups.runAll());

/** Every operation of the document: path, method and summary. */
function operations(): { path: string; method: string; summary?: string }[] {
  return Object.entries<Json>(doc.paths).flatMap(([path, item]) =>
    Object.entries<Json>(item).map(([method, op]) => ({ path, method, summary: op.summary })),
  );
}

describe('the reference page in Chromium', () => {
  let page: Page;
  const requests: string[] = [];
  const problems: string[] = [];
  let cspHeader: string | undefined;

  beforeAll(async () => {
    page = await browser.newPage();
    page.on('request', (r) => requests.push(r.url()));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    const response = await page.goto(`${server.origin}/docs`, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    cspHeader = response?.headers()['content-security-policy'];
    // Swagger UI has rendered once every operation's row is there.
    await page
      .locator('.opblock')
      .nth(operations().length - 1)
      .waitFor({ timeout: 15_000 });
  });

  it('renders every operation of /openapi.json, with its path and summary', async () => {
    const rendered = await page
      .locator('.opblock')
      .evaluateAll((blocks) =>
        blocks.map((b) => [
          b.querySelector('.opblock-summary-method')?.textContent?.toLowerCase(),
          b.querySelector('.opblock-summary-path')?.getAttribute('data-path'),
        ]),
      );
    const expected = operations().map((op) => [op.method, op.path]);
    expect(rendered.sort()).toEqual(expected.sort());
    expect(rendered).toContainEqual(['get', '/v1/tunnels']);
    const summaries = operations().flatMap((op) => (op.summary ? [op.summary] : []));
    expect(summaries).toContain('This API reference, as a web page');
    for (const summary of summaries) {
      await expect(page.getByText(summary, { exact: true }).first().isVisible()).resolves.toBe(true);
    }
  });

  it('shows an operation opened, with its request schema', async () => {
    const create = page.locator('.opblock-post').filter({ has: page.locator('[data-path="/v1/tunnels"]') });
    await create.locator('.opblock-summary-control').click();
    await create.locator('.opblock-body').getByText('Request body').waitFor({ timeout: 5_000 });
  });

  it('asked nothing of any other host, and sent the Content-Security-Policy that enforces it', () => {
    const origins = new Set(requests.filter((u) => !u.startsWith('data:')).map((u) => new URL(u).origin));
    expect([...origins]).toEqual([server.origin]);
    const paths = requests.map((u) => new URL(u).pathname);
    expect(paths).toEqual(
      expect.arrayContaining([
        '/docs',
        '/openapi.json',
        ...DOCS_ASSET_NAMES.map((name) => `/docs/assets/${name}`),
      ]),
    );
    expect(cspHeader).toMatch(/default-src 'none'/);
    expect(cspHeader).toMatch(/script-src 'self'(;|$)/);
    expect(cspHeader).toMatch(/connect-src 'self'(;|$)/);
  });

  it('logged no error or warning, and broke no policy', () => {
    expect(problems).toEqual([]);
  });

  it('would have been stopped, and seen, asking another host: the policy is in force', async () => {
    const probe = await browser.newPage();
    const seen: string[] = [];
    probe.on('console', (m) => seen.push(`${m.type()}: ${m.text()}`));
    await probe.goto(`${server.origin}/docs`, { waitUntil: 'commit' });
    const outcome = await probe.evaluate(() =>
      fetch('http://127.0.0.2:9/openapi.json').then(
        () => 'fetched',
        (err: Error) => err.message,
      ),
    );
    expect(outcome).toBe('Failed to fetch');
    expect(seen.join('\n')).toMatch(
      /^error: .*violates the following Content Security Policy directive: "connect-src 'self'"/m,
    );
    await probe.close();
  });
});

describe('the page and its files over HTTP', () => {
  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${server.origin}${path}`, { headers });

  it('describes both routes in /openapi.json, public, under the Service tag', () => {
    expect(doc.paths['/docs'].get).toMatchObject({ operationId: 'getDocs', tags: ['Service'], security: [] });
    expect(Object.keys(doc.paths['/docs'].get.responses).sort()).toEqual(['200', '304', '500']);
    const asset = doc.paths['/docs/assets/{file}'].get;
    expect(asset).toMatchObject({ operationId: 'getDocsAsset', tags: ['Service'], security: [] });
    expect(Object.keys(asset.responses).sort()).toEqual(['200', '304', '404', '500']);
    expect(asset.parameters[0].schema.enum).toEqual(DOCS_ASSET_NAMES);
  });

  it('serves the page as HTML with its security headers, revalidated on every visit', async () => {
    const res = await get('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script>|<style|style=/); // nothing inline for the policy to allow
  });

  it.each([
    ['swagger-ui.js', /^text\/javascript; charset=utf-8$/],
    ['swagger-ui.css', /^text\/css; charset=utf-8$/],
    ['docs.js', /^text\/javascript; charset=utf-8$/],
  ])('serves %s with its type, an ETag, a year of caching, and 304 when unchanged', async (name, type) => {
    const res = await get(`/docs/assets/${name}`, { 'Accept-Encoding': 'identity' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(type);
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(res.headers.get('content-encoding')).toBeNull();
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBeGreaterThan(100);
    const etag = res.headers.get('etag') ?? '';
    expect(etag).toMatch(/^"[\w-]{43}"$/);

    const again = await get(`/docs/assets/${name}`, { 'Accept-Encoding': 'identity', 'If-None-Match': etag });
    expect(again.status).toBe(304);
    expect(again.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  });

  it('sends the files gzipped to a client that accepts it (the renderer shrinks to about a third)', async () => {
    const raw = await api.app.request('/docs/assets/swagger-ui.js', {
      headers: { 'Accept-Encoding': 'identity' },
    });
    const zipped = await api.app.request('/docs/assets/swagger-ui.js', {
      headers: { 'Accept-Encoding': 'gzip, deflate, br' },
    });
    expect(zipped.headers.get('content-encoding')).toBe('gzip');
    expect(zipped.headers.get('vary')).toBe('Accept-Encoding');
    expect(zipped.headers.get('etag')).not.toBe(raw.headers.get('etag'));
    const plain = Buffer.from(await raw.arrayBuffer());
    const compressed = Buffer.from(await zipped.arrayBuffer());
    expect(gunzipSync(compressed).equals(plain)).toBe(true); // (toEqual walks 1.7 MB byte by byte: seconds)
    console.info(
      `figure: docs renderer ${(plain.length / 1024).toFixed(0)} KiB, ${(compressed.length / 1024).toFixed(0)} KiB gzipped`,
    );
    expect(compressed.length).toBeLessThan(plain.length / 2);
  });

  it.each([
    'unknown.js',
    'package.json',
    '..%2F..%2Fpackage.json',
    '%2Fetc%2Fpasswd',
    'swagger-ui-bundle.js',
    'docs.js%00',
    'constructor',
    '__proto__',
  ])('answers 404 with the error body for %s: only the listed files are served', async (name) => {
    const res = await get(`/docs/assets/${name}`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body: Json = await res.json();
    expect(body).toMatchObject({ error: { code: 'not_found' } });
    expect(body.error.message).toContain('swagger-ui.css');
  });

  it('ships in the API Lambda every package file the page serves', () => {
    expect(API_BUNDLE_PACKAGE_FILES).toEqual(expect.arrayContaining(DOCS_PACKAGE_FILES));
  });
});

describe('acceptsGzip', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['identity', false],
    ['gzip', true],
    ['deflate, gzip;q=0.5', true],
    ['GZIP', true],
    ['gzip;q=0', false],
    ['gzip; q=0.000', false],
    ['*', true],
    ['*;q=0', false],
    ['gzip;q=0, *', false],
    ['br, *;q=0.1', true],
    ['gzip;q=nonsense', false],
  ])('%j → %s', (header, expected) => {
    expect(acceptsGzip(header)).toBe(expected);
  });
});

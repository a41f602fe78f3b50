/**
 * The customer console (issue 15) over the API alone, in Debian's Chromium: signing in and out
 * (acceptance 5), the add form's field errors from the API (3), user strings rendered as text under
 * a policy that forbids inline script (4), the list polling for free with If-None-Match, and the
 * page's files over plain HTTP. No gateway is needed for any of it: the API with a table suffices.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConsole } from '../../console/build';
import { onceConsole } from '../../lambda/api/console-files';
import { createTestApi } from '../helpers/api';
import { type Listening, launchChromium, listen } from '../helpers/browser';
import { Cleanups } from '../helpers/cleanups';
import { openConsole, PHONE, signIn } from '../helpers/console-page';
import { waitFor } from '../helpers/wait-for';

type Api = Awaited<ReturnType<typeof createTestApi>>;

const cleanups = new Cleanups();
let api: Api;
let server: Listening;
let browser: Browser;
let workspace: { id: string; apiKey: string };

beforeAll(async () => {
  [api, browser] = await Promise.all([
    cleanups.started(createTestApi({ console: onceConsole(buildConsole) }), (a) => a.close()),
    cleanups.started(launchChromium(), (b) => b.close()),
  ]);
  server = await cleanups.started(listen(api.app.fetch), (s) => s.close());
  workspace = await api.newWorkspace('console');
});

afterAll(() => cleanups.runAll());

const listTunnels = async (key: string) =>
  (await api.call('GET', '/v1/tunnels', key)).json.items as { name: string }[];

describe('signing in and out (acceptance 5)', () => {
  it('says clearly that a wrong key is wrong, keeps nobody signed in, then signs in with the right one', async () => {
    const c = await openConsole(browser, server.origin);
    try {
      const { page } = c;
      await page.getByLabel('API key').fill('tk_this-is-not-a-key-of-anyone');
      await page.getByRole('button', { name: 'Sign in' }).click();
      const error = page.getByRole('alert');
      await error.waitFor();
      expect(await error.textContent()).toMatch(/That API key is not valid/);
      expect(await page.getByLabel('API key').getAttribute('aria-invalid')).toBe('true');
      expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

      await signIn(page, workspace.apiKey);
      expect(await page.evaluate(() => sessionStorage.getItem('tunnelkeeper.apiKey'))).toBe(workspace.apiKey);
      // Never in a URL: not the page's, and not any request's.
      expect(page.url()).not.toContain(workspace.apiKey);
      expect(c.requests.filter((u) => u.includes(workspace.apiKey))).toEqual([]);

      // A reload keeps the session (same tab); signing out forgets the key.
      await page.reload();
      await page.getByRole('heading', { name: 'Tunnels', level: 1 }).waitFor();
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      expect(await page.evaluate(() => JSON.stringify({ ...sessionStorage }))).toBe('{}');
      expect(await page.evaluate(() => localStorage.length)).toBe(0);
      expect(c.problems.filter((p) => !p.includes('401'))).toEqual([]);
    } finally {
      await c.close();
    }
  });
});

describe('the add form (acceptance 3)', () => {
  it('shows a bad port and a bad public key beside their fields at once, from the API, and creates nothing', async () => {
    const c = await openConsole(browser, server.origin);
    try {
      const { page } = c;
      await signIn(page, workspace.apiKey);
      const before = (await listTunnels(workspace.apiKey)).length;
      await page.getByRole('link', { name: 'Add tunnel' }).first().click();
      await page.getByRole('heading', { name: 'Add a tunnel' }).waitFor();
      await page.getByLabel('Name').fill('warehouse');
      await page.getByLabel('Service host').fill('db.internal');
      await page.getByLabel('Service port').fill('70000');
      await page.getByLabel('I have a key: paste its public key').check();
      await page.getByRole('textbox', { name: 'Public key' }).fill('ssh-ed25519 not-a-key me@laptop');
      await page.getByRole('button', { name: 'Create tunnel' }).click();

      // One 422 names both fields: each error shows beside its own field.
      const portError = page.locator('[data-field-error="f-service-port"]');
      const keyError = page.locator('[data-field-error="f-publicKey"]');
      await Promise.all([portError.waitFor({ timeout: 10_000 }), keyError.waitFor({ timeout: 10_000 })]);
      expect(await portError.textContent()).toMatch(/65535/);
      expect(await keyError.textContent()).toMatch(/the key data after "ssh-ed25519"/);
      expect(await page.getByLabel('Service port').getAttribute('aria-describedby')).toContain(
        'f-service-port-error',
      );
      expect(
        await page.getByRole('textbox', { name: 'Public key' }).getAttribute('aria-describedby'),
      ).toContain('f-publicKey-error');
      // Focus goes to the first field in error.
      expect(await page.evaluate('document.activeElement?.id')).toBe('f-service-port');
      expect(page.url()).toMatch(/#\/tunnels\/new$/);
      expect((await listTunnels(workspace.apiKey)).length).toBe(before);
      // The API's 422 is expected; nothing else went wrong.
      expect(c.problems.filter((p) => !/422/.test(p))).toEqual([]);
    } finally {
      await c.close();
    }
  });
});

describe('user strings are text (acceptance 4)', () => {
  const NAME = '<img src=x onerror=alert(1)><script>alert(2)</script>';
  const HOST = '<svg/onload=alert(3)>';

  it('renders a hostile name as itself in the list, the tunnel page and the dialogs; no dialog opens; the policy is sent', async () => {
    const created = await api.call('POST', '/v1/tunnels', workspace.apiKey, {
      type: 'reverse',
      name: NAME,
      service: { host: 'db.internal', port: 5432 },
    });
    expect(created.status).toBe(201);
    const c = await openConsole(browser, server.origin);
    try {
      const { page } = c;
      const res = await page.goto(`${server.origin}/`);
      const csp = res?.headers()['content-security-policy'] ?? '';
      expect(csp).toMatch(/default-src 'self'/);
      expect(csp).toMatch(/script-src 'self'(;|$)/);
      expect(csp).toMatch(/require-trusted-types-for 'script'/);
      await signIn(page, workspace.apiKey);
      const row = page.locator(`[data-tunnel-id="${created.json.id}"]`);
      await row.waitFor();
      expect(await row.locator('.row-name').textContent()).toBe(NAME);
      await row.getByRole('link').click();
      await page.getByRole('heading', { name: NAME, level: 1 }).waitFor();
      await page.getByRole('button', { name: 'Delete…' }).click();
      await page.getByRole('heading', { name: `Delete ${NAME}?` }).waitFor();
      await page.getByRole('button', { name: 'Cancel' }).last().click();
      expect(await page.locator('img, svg, script:not([src])').count()).toBe(0);

      // A hostile service host: the API refuses it, and its message shows beside the field as text.
      await page.goto(`${server.origin}/#/tunnels/new`);
      await page.getByLabel('Name').fill(NAME);
      await page.getByLabel('Service host').fill(HOST);
      await page.getByLabel('Service port').fill('5432');
      await page.getByRole('button', { name: 'Create tunnel' }).click();
      const hostError = page.locator('[data-field-error="f-service-host"]');
      await hostError.waitFor();
      expect(await hostError.textContent()).toMatch(/DNS name or an IP address/);
      expect(await page.getByLabel('Service host').inputValue()).toBe(HOST);
      expect(await page.locator('img, svg, script:not([src])').count()).toBe(0);
      expect(c.dialogs).toEqual([]);
      expect(c.problems.filter((p) => !/422/.test(p))).toEqual([]);
    } finally {
      await c.close();
    }
  });
});

describe('the tunnel list', () => {
  it('polls with If-None-Match: unchanged rounds are 304s, a new tunnel appears without a reload; filters and pages', async () => {
    const ws = await api.newWorkspace('list');
    const c = await openConsole(browser, server.origin, PHONE);
    try {
      const { page } = c;
      const statuses: number[] = [];
      page.on('response', (r) => {
        if (new URL(r.url()).pathname === '/v1/tunnels') statuses.push(r.status());
      });
      await signIn(page, ws.apiKey);
      await page.getByText('No tunnels yet.').waitFor();
      await page.evaluate('window.marker = 1');
      const made = await api.call('POST', '/v1/tunnels', ws.apiKey, {
        type: 'reverse',
        name: 'appears-by-itself',
        service: { host: 'db.internal', port: 5432 },
      });
      expect(made.status).toBe(201);
      await page.getByText('appears-by-itself').waitFor({ timeout: 10_000 });
      await page
        .getByText('appears-by-itself')
        .locator('xpath=ancestor::li')
        .getByText('Waiting for first connection')
        .waitFor();
      // Same document: the page was never reloaded.
      expect(await page.evaluate('window.marker')).toBe(1);
      await expect
        .poll(() => statuses.filter((s) => s === 304).length, { timeout: 10_000 })
        .toBeGreaterThan(0);

      await page.getByText('Up', { exact: true }).click();
      await page.getByText('No tunnel in this state.').waitFor();
      await page.getByText('Pending', { exact: true }).click();
      await page.getByText('appears-by-itself').waitFor();

      // 21 tunnels make two pages of 20.
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          api.call('POST', '/v1/tunnels', ws.apiKey, {
            type: 'reverse',
            name: `bulk-${String(i).padStart(2, '0')}`,
            service: { host: 'db.internal', port: 5432 },
          }),
        ),
      );
      await page.getByText('All', { exact: true }).click();
      await expect.poll(() => page.locator('.tunnel-row').count(), { timeout: 10_000 }).toBe(20);
      await page.getByRole('button', { name: 'Next' }).click();
      await expect.poll(() => page.locator('.tunnel-row').count(), { timeout: 10_000 }).toBe(1);
      await page.getByRole('button', { name: 'Previous' }).click();
      await expect.poll(() => page.locator('.tunnel-row').count(), { timeout: 10_000 }).toBe(20);
      // Nothing sticks out of a phone's width.
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(PHONE.width);
      expect(c.problems).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it('is usable from the keyboard: skip link, then the form in order', async () => {
    const c = await openConsole(browser, server.origin);
    try {
      const { page } = c;
      await signIn(page, workspace.apiKey);
      // Each page puts focus on its heading; before it, the first stop is the skip link, shown when focused.
      expect(await page.evaluate('document.activeElement?.textContent')).toBe('Tunnels');
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Shift+Tab');
      expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
      expect((await page.locator('.skip').boundingBox())?.x).toBeGreaterThanOrEqual(0);
      await page.keyboard.press('Enter');
      await page.goto(`${server.origin}/#/tunnels/new`);
      await page.getByRole('heading', { name: 'Add a tunnel' }).waitFor();
      // The heading takes focus as the page opens (an effect, just after it shows); Tab goes on to
      // the type choice, then the name.
      // Polled from here: the console's CSP refuses the string evaluation waitForFunction polls with.
      await waitFor(async () => (await page.evaluate('document.activeElement?.tagName')) === 'H1', 5_000, {
        what: 'the heading focused',
        intervalMs: 20,
      });
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement?.name')).toBe('type');
      await page.keyboard.press('ArrowRight');
      await page.getByLabel('Bastion host').waitFor();
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement?.id')).toBe('f-name');
    } finally {
      await c.close();
    }
  });
});

describe('the console over HTTP', () => {
  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${server.origin}${path}`, { headers });

  it('serves the page with its policy and no inline script, its files by hash for a year, and 404 for any other name', async () => {
    const res = await get('/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script>|<style|style=/);
    const assets = [...html.matchAll(/(?:href|src)="(console\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets).toHaveLength(2);
    for (const asset of assets) {
      const file = await get(`/${asset}`, { 'Accept-Encoding': 'gzip' });
      expect(file.status).toBe(200);
      expect(file.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(file.headers.get('content-encoding')).toBe('gzip');
      const again = await get(`/${asset}`, {
        'Accept-Encoding': 'gzip',
        'If-None-Match': file.headers.get('etag') ?? '',
      });
      expect(again.status).toBe(304);
    }
    for (const name of ['index.html', 'nope.js', '..%2Fpackage.json', '%2Fetc%2Fpasswd', '__proto__']) {
      const miss = await get(`/console/${name}`);
      expect(miss.status, name).toBe(404);
      expect(((await miss.json()) as { error: { code: string } }).error.code).toBe('not_found');
    }
  });

  it('answers If-None-Match on the list and a tunnel with 304 while nothing changed', async () => {
    const ws = await api.newWorkspace('etag');
    const first = await api.call('GET', '/v1/tunnels', ws.apiKey);
    const etag = first.headers.get('etag') ?? '';
    expect(etag).not.toBe('');
    const res = await api.app.request('/v1/tunnels', {
      headers: { Authorization: `Bearer ${ws.apiKey}`, 'If-None-Match': etag },
    });
    expect(res.status).toBe(304);
    const made = await api.call('POST', '/v1/tunnels', ws.apiKey, {
      type: 'reverse',
      name: 'etag',
      service: { host: 'db.internal', port: 5432 },
    });
    const changed = await api.app.request('/v1/tunnels', {
      headers: { Authorization: `Bearer ${ws.apiKey}`, 'If-None-Match': etag },
    });
    expect(changed.status).toBe(200);
    const one = await api.call('GET', `/v1/tunnels/${made.json.id}`, ws.apiKey);
    const same = await api.app.request(`/v1/tunnels/${made.json.id}`, {
      headers: { Authorization: `Bearer ${ws.apiKey}`, 'If-None-Match': one.headers.get('etag') ?? '' },
    });
    expect(same.status).toBe(304);
  });

  it('answers 404 at / where no console is served (a test app without one)', async () => {
    const bare = await createTestApi();
    try {
      const res = await bare.call('GET', '/', undefined);
      expect(res.status).toBe(404);
      expect(res.json.error.code).toBe('not_found');
    } finally {
      await bare.close();
    }
  });
});

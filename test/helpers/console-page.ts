/**
 * The customer console in a real browser for tests: a page with everything that would show a
 * problem recorded (console errors and warnings, page errors, failed requests, dialogs, requests
 * to any other origin), signing in as a customer does, and the screenshots the README shows.
 */
import { mkdir } from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';

export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };
export const SCREENSHOT_DIR = new URL('../../docs/console/', import.meta.url).pathname;

export interface ConsolePage {
  context: BrowserContext;
  page: Page;
  /** Everything that went wrong in the page so far (empty when all is well). */
  problems: string[];
  /** Every URL the page asked for. */
  requests: string[];
  /** Messages of every dialog (alert, confirm) the page opened; each was dismissed. */
  dialogs: string[];
  close(): Promise<void>;
}

export async function openConsole(
  browser: Browser,
  origin: string,
  viewport: { width: number; height: number } = DESKTOP,
): Promise<ConsolePage> {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  const page = await context.newPage();
  const problems: string[] = [];
  const requests: string[] = [];
  const dialogs: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('requestfailed', (r) => {
    // A poll cut short by leaving the page is the browser's doing, not the console's.
    if (r.failure()?.errorText !== 'net::ERR_ABORTED')
      problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.goto(`${origin}/`, { waitUntil: 'load' });
  return { context, page, problems, requests, dialogs, close: () => context.close() };
}

/** Signs in with `apiKey` through the form, and waits for the tunnel list. */
export async function signIn(page: Page, apiKey: string): Promise<void> {
  await page.getByLabel('API key').fill(apiKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Tunnels', level: 1 }).waitFor({ timeout: 10_000 });
}

/** What the clipboard holds (after a copy button was pressed). */
export function clipboardText(page: Page): Promise<string> {
  return page.evaluate<string>('navigator.clipboard.readText()');
}

/** The copy button labelled `Copy <name>` pressed, and what it put on the clipboard. */
export async function copy(page: Page, name: string): Promise<string> {
  await page.evaluate("navigator.clipboard.writeText('')");
  await page.getByRole('button', { name: `Copy ${name}`, exact: true }).click();
  await page
    .getByRole('button', { name: `Copy ${name}`, exact: true })
    .getByText('Copied')
    .waitFor({ timeout: 5_000 });
  return clipboardText(page);
}

/** `docs/console/<name>-<desktop|phone>.png`, the visible viewport (full pages grow the files). */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const width = page.viewportSize()?.width ?? 0;
  const path = `${SCREENSHOT_DIR}${name}-${width <= PHONE.width ? 'phone' : 'desktop'}.png`;
  // No blinking caret or focus ring in the picture.
  await page.evaluate('document.activeElement?.blur(); window.scrollTo(0, 0)');
  await page.screenshot({ path, animations: 'disabled', caret: 'hide' });
  return path;
}

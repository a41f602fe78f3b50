/**
 * The customer console end to end (issue 15, acceptance 1, 2 and 6), in Debian's Chromium against
 * the local stack (API, gateway, real OpenSSH on both sides): a customer who reads only the page
 * sets up a reverse tunnel (generated key downloaded, the ssh command copied from the page and run
 * verbatim as a throwaway Unix user) and a standard one (the page's authorized_keys line on a real
 * sshd bastion), watches each dot turn green without a reload, tests them, and sees each break with
 * its code, hint and troubleshooting. On the way it writes the README's screenshots.
 */
import { readFile } from 'node:fs/promises';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../helpers/browser';
import { Cleanups } from '../helpers/cleanups';
import {
  type ConsolePage,
  copy,
  DESKTOP,
  openConsole,
  PHONE,
  screenshot,
  signIn,
} from '../helpers/console-page';
import { Customer, requireTools } from '../helpers/customer';
import { type StandardWorld, startStandardWorld } from '../helpers/standard';

const cleanups = new Cleanups();
let world: StandardWorld;
let browser: Browser;
let desktop: ConsolePage;
let customer: Customer;
const UI_MS = 20_000;

beforeAll(async () => {
  requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
  [world, browser, customer] = await Promise.all([
    startStandardWorld(cleanups, {
      portRange: '18200-18299',
      heartbeatIntervalMs: 1_000,
      keepaliveIntervalMs: 2_000,
      env: {
        RECONNECT_INITIAL_MS: '200',
        RECONNECT_MAX_MS: '1000',
        BASTION_READY_TIMEOUT_MS: '5000',
        POOL_POLL_INTERVAL_MS: '500',
      },
    }),
    cleanups.started(launchChromium(), (b) => b.close()),
    cleanups.started(Customer.create(), (c) => c.dispose()),
  ]);
  // Closed with the browser (a close of its own would race the browser's in the cleanups).
  desktop = await openConsole(browser, world.stack.baseUrl, DESKTOP);
  await signIn(desktop.page, world.stack.apiKey);
}, 90_000);

afterAll(() => cleanups.runAll());

/** The tunnel page's status block once its dot shows `state`. */
async function waitForDot(page: Page, state: string, timeoutMs = UI_MS) {
  const status = page.getByTestId('status');
  await status.locator(`.status[data-state="${state}"]`).waitFor({ timeout: timeoutMs });
  return status;
}

/** Presses Test connection and returns the checks as the page shows them. */
async function testConnection(page: Page) {
  await page.getByRole('button', { name: 'Test connection' }).click();
  const checks = page.getByTestId('checks');
  await checks.and(page.locator('[data-result="pass"], [data-result="fail"]')).waitFor({ timeout: 30_000 });
  return {
    result: await checks.getAttribute('data-result'),
    rows: await checks.locator('li').evaluateAll((lis) =>
      lis.map((li) => ({
        name: li.getAttribute('data-check'),
        ok: li.getAttribute('data-ok'),
        text: li.textContent ?? '',
      })),
    ),
  };
}

/** Fills the add form and creates the tunnel; resolves with its id once its page shows. */
async function addTunnel(page: Page, fill: (page: Page) => Promise<void>): Promise<string> {
  await page.getByRole('link', { name: 'Add tunnel' }).first().click();
  await page.getByRole('heading', { name: 'Add a tunnel' }).waitFor();
  await fill(page);
  await page.getByRole('button', { name: 'Create tunnel' }).click();
  await page.getByTestId('status').waitFor({ timeout: UI_MS });
  const id = /#\/tunnels\/(tun_[a-z0-9]+)$/.exec(page.url())?.[1];
  if (!id) throw new Error(`not on a tunnel page: ${page.url()}`);
  return id;
}

describe('the customer console, end to end', () => {
  let reverseId: string;
  let standardId: string;
  let ssh: ReturnType<Customer['start']>;

  it('a standard tunnel: the page gives the authorized_keys line, the dot turns green, Test connection passes (acceptance 2)', async () => {
    const { page } = desktop;
    const { bastion, echo } = world;
    standardId = await addTunnel(page, async (p) => {
      await p.getByLabel('Standard').check();
      await p.getByLabel('Name').fill('orders-db (standard)');
      await p.getByLabel('Service host').fill('127.0.0.1');
      await p.getByLabel('Service port').fill(String(echo.port));
      await p.getByLabel('Bastion host').fill('127.0.0.1');
      await p.getByLabel('SSH port').fill(String(bastion.port));
      await p.getByLabel('User on the bastion').fill(bastion.user);
    });
    const line = await copy(page, 'authorized_keys line');
    expect(line).toMatch(/permitopen="127\.0\.0\.1:\d+" ssh-ed25519 /);
    const setup = await copy(page, 'bastion set-up commands');
    expect(setup).toContain('install -d -m 700');
    expect(setup).toContain('chmod 600');
    expect(setup).toContain(line.slice(-40));
    await bastion.setAuthorizedKeys([line]);
    await waitForDot(page, 'up', 30_000);
    expect(await page.getByTestId('pinned-host-key').textContent()).toBe(bastion.hostKeyFingerprint());
    const test = await testConnection(page);
    expect(test.result).toBe('pass');
    expect(test.rows.map((r) => r.name)).toEqual([
      'configured',
      'resolve',
      'tcp',
      'ssh_handshake',
      'auth',
      'channel',
      'probe',
    ]);
    expect(test.rows.every((r) => r.ok === 'true')).toBe(true);
  }, 60_000);

  it('a reverse tunnel: generated key downloaded, ssh command copied from the page and run verbatim, green by itself, tests pass (acceptance 1)', async () => {
    const { page } = desktop;
    const { echo } = world;
    await page.getByRole('link', { name: 'Add tunnel' }).first().click();
    await page.getByLabel('Name').fill('warehouse (reverse)');
    await page.getByLabel('Service host').fill('127.0.0.1');
    await page.getByLabel('Service port').fill(String(echo.port));
    await screenshot(page, 'add-form');
    await page.getByRole('button', { name: 'Create tunnel' }).click();
    await page.getByTestId('status').waitFor({ timeout: UI_MS });
    reverseId = /#\/tunnels\/(tun_[a-z0-9]+)$/.exec(page.url())?.[1] ?? '';
    expect(reverseId).not.toBe('');
    await page.evaluate('window.marker = 1');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download private key' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`tunnelkeeper_${reverseId}`);
    const privateKey = await readFile(await download.path(), 'utf8');
    expect(privateKey).toMatch(
      /^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]+-----END OPENSSH PRIVATE KEY-----\n$/,
    );
    await customer.installKey(reverseId, privateKey);
    await customer.trustHosts(await copy(page, 'known_hosts line'));
    const command = await copy(page, 'ssh command');
    expect(command).toContain(`tunnelkeeper_${reverseId}`);
    ssh = customer.start(command);

    await waitForDot(page, 'up', 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\nssh stderr: ${ssh.stderr()}`);
    });
    // The same document all along: the dot turned green without a reload.
    expect(await page.evaluate('window.marker')).toBe(1);
    const test = await testConnection(page);
    expect(test.result).toBe('pass');
    expect(test.rows.map((r) => r.name)).toEqual(['configured', 'customer_connected', 'channel', 'probe']);
    expect(test.rows.every((r) => r.ok === 'true')).toBe(true);
    // The one-time key is not kept: another visit of the page does not offer it.
    await screenshot(page, 'tunnel-page');
    await page.reload();
    await waitForDot(page, 'up');
    expect(await page.getByRole('button', { name: 'Download private key' }).count()).toBe(0);
  }, 60_000);

  it('the list shows both green; the screenshots at phone width too (acceptance 6)', async () => {
    const { page } = desktop;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tunnels' }).click();
    // The list's rows: the tunnel page just left carries the same data-tunnel-id until it is gone.
    for (const id of [reverseId, standardId]) {
      await page
        .locator(`.tunnel-row[data-tunnel-id="${id}"] .status[data-state="up"]`)
        .waitFor({ timeout: UI_MS });
    }
    await screenshot(page, 'tunnel-list');
    const phone = await openConsole(browser, world.stack.baseUrl, PHONE);
    try {
      await signIn(phone.page, world.stack.apiKey);
      await phone.page
        .locator(`.tunnel-row[data-tunnel-id="${reverseId}"] .status[data-state="up"]`)
        .waitFor({ timeout: UI_MS });
      await screenshot(phone.page, 'tunnel-list');
      await phone.page.goto(`${world.stack.baseUrl}/#/tunnels/new`);
      await phone.page.getByRole('heading', { name: 'Add a tunnel' }).waitFor();
      await screenshot(phone.page, 'add-form');
      await phone.page.goto(`${world.stack.baseUrl}/#/tunnels/${reverseId}`);
      await waitForDot(phone.page, 'up');
      await screenshot(phone.page, 'tunnel-page');
      for (const p of [phone.page, page]) {
        expect(await p.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(
          p.viewportSize()?.width ?? 0,
        );
      }
      expect(phone.problems).toEqual([]);
    } finally {
      await phone.close();
    }
  }, 60_000);

  it('the reverse tunnel: its ssh killed, the dot turns red with the error and its hint (acceptance 1)', async () => {
    const { page } = desktop;
    await page.goto(`${world.stack.baseUrl}/#/tunnels/${reverseId}`);
    await waitForDot(page, 'up');
    ssh.kill();
    const status = await waitForDot(page, 'down');
    const error = status.locator('.status-error');
    expect(await error.getAttribute('data-error-code')).toMatch(/^customer_(not_connected|timeout)$/);
    expect(await error.locator('.error-hint').textContent()).toMatch(/What to do: .{20,}/);
    await page.locator('[data-troubleshooting^="customer_"]').waitFor();
  }, 60_000);

  it("the standard tunnel: the bastion's key removed, the page shows auth_failed, its hint and its troubleshooting (acceptance 2)", async () => {
    const { page } = desktop;
    const { bastion } = world;
    await page.goto(`${world.stack.baseUrl}/#/tunnels/${standardId}`);
    await waitForDot(page, 'up');
    await bastion.setAuthorizedKeys([]);
    await bastion.restart({ dropSessions: true });
    const status = await waitForDot(page, 'down', 30_000);
    const error = status.locator('.status-error[data-error-code="auth_failed"]');
    await error.waitFor({ timeout: 30_000 });
    expect(await error.locator('.error-hint').textContent()).toMatch(/authorized_keys/);
    const panel = page.locator('[data-troubleshooting="auth_failed"]');
    await panel.waitFor();
    const text = (await panel.textContent()) ?? '';
    expect(text).toContain(`id ${bastion.user}`);
    expect(text).toMatch(/700.*600/s);
    expect(text).toContain('ssh -v');
    const test = await testConnection(page);
    expect(test.result).toBe('fail');
    expect(test.rows.find((r) => r.ok === 'false')?.name).toBe('auth');
    expect(desktop.problems.filter((p) => !/\b(401|404|409)\b/.test(p))).toEqual([]);
    expect(desktop.dialogs).toEqual([]);
  }, 60_000);
});

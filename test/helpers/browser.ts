/**
 * A real browser for tests of pages the API serves: Debian's Chromium driven by `playwright-core`
 * (never a browser download), and the app listening on a loopback port of the OS's choice so the
 * page has a real origin.
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Fails loudly, never skips, where Chromium is missing. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `browser tests need Debian's chromium at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`,
    );
  }
}

export async function launchChromium(): Promise<Browser> {
  requireChromium();
  return chromium.launch({
    executablePath: CHROMIUM,
    // No calls home from the browser itself: a test that records every request sees the page's only.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    timeout: 20_000,
  });
}

export interface Listening {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  close(): Promise<void>;
}

/** Serves `fetch` (a Hono app's) on 127.0.0.1, port 0. */
export async function listen(fetch: (req: Request) => Response | Promise<Response>): Promise<Listening> {
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive sockets would hold close() open until they time out.
        if ('closeIdleConnections' in server) server.closeIdleConnections();
      }),
  };
}

/**
 * One Node major everywhere: the runtime `npm ci` brings (the `node` devDependency, first on npm's
 * PATH, so it runs `npm start` and these tests), the gateway image, the Lambda runtime and the bundles'
 * target; and ssh2's native crypto helper built for, and loading in, that runtime.
 */
import { readFile, realpath } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { NODE_TARGET } from '../cdk/lib/bundles';
import { LAMBDA_RUNTIME } from '../cdk/lib/lambda-function';

const REPO_ROOT = new URL('..', import.meta.url).pathname;
const require = createRequire(import.meta.url);

async function pinnedRuntime(): Promise<string> {
  const pkg = JSON.parse(await readFile(`${REPO_ROOT}package.json`, 'utf8'));
  return String(pkg.devDependencies?.node ?? '');
}

const majorOf = (version: string) => /^v?(\d+)\./.exec(version)?.[1];

describe('the Node runtime', () => {
  it('is pinned exactly, and these tests run on it', async () => {
    const pinned = await pinnedRuntime();
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect(process.version).toBe(`v${pinned}`);
  });

  it('is the major of the gateway image, the Lambda runtime and the bundles', async () => {
    const major = majorOf(await pinnedRuntime());
    const dockerfile = await readFile(`${REPO_ROOT}fargate/Dockerfile`, 'utf8');
    expect(/^ARG NODE_IMAGE=node:(\d+)-/m.exec(dockerfile)?.[1]).toBe(major);
    expect(LAMBDA_RUNTIME.name).toBe(`nodejs${major}.x`);
    expect(NODE_TARGET).toBe(`node${major}`);
  });

  it("loads ssh2's native crypto helper", () => {
    const crypto: { bindingAvailable?: boolean } = require('ssh2/lib/protocol/crypto.js');
    expect(crypto.bindingAvailable).toBe(true);
  });

  it('declares no engines that npm, run by another Node, would warn about', async () => {
    // npm checks `engines` against the Node that runs npm (Debian's), not the one it installs.
    const pkg = JSON.parse(await readFile(`${REPO_ROOT}package.json`, 'utf8'));
    expect(pkg.engines).toBeUndefined();
  });

  it("installs nothing through the root's npm that Debian's Node 20 would be warned about", async () => {
    // What the root lockfile installs is checked by npm on the Node that runs it: a package that
    // wants 22 goes to runtime-deps/ (installed by the postinstall with the pinned Node).
    const lock = JSON.parse(await readFile(`${REPO_ROOT}package-lock.json`, 'utf8'));
    const wanting = Object.entries<{ engines?: { node?: string } }>(lock.packages)
      .filter(([, entry]) => entry.engines?.node && !admitsNode20(entry.engines.node))
      .map(([path, entry]) => `${path} (${entry.engines?.node})`);
    expect(wanting).toEqual([]);
    const runtimeDeps = JSON.parse(await readFile(`${REPO_ROOT}runtime-deps/package.json`, 'utf8'));
    for (const name of Object.keys(runtimeDeps.dependencies)) {
      // Linked in by the postinstall, where imports find the root's own packages.
      expect(await realpath(`${REPO_ROOT}node_modules/${name}`)).toBe(
        `${await realpath(`${REPO_ROOT}runtime-deps`)}/node_modules/${name}`,
      );
    }
  });
});

/** Whether a `>=x.y.z` (or `^20`/`>=18` style) range admits Debian's Node 20 (20.19 and later). */
function admitsNode20(range: string): boolean {
  return range.split('||').some((part) => {
    const floor = /^\s*>=\s*v?(\d+)(?:\.(\d+))?/.exec(part);
    if (floor) return Number(floor[1]) < 20 || (Number(floor[1]) === 20 && Number(floor[2] ?? 0) <= 19);
    const caret = /^\s*\^?(\d+)/.exec(part);
    return caret ? Number(caret[1]) === 20 : true;
  });
}

describe('runtimeMismatch (npm start checks the Node it runs on)', () => {
  const packageJson = `${REPO_ROOT}package.json`;

  it('says nothing on the pinned major', async () => {
    const { runtimeMismatch } = await import('../local/runtime-check');
    expect(runtimeMismatch(packageJson, process.version)).toBeUndefined();
  });

  it("names both versions on another major, such as Debian's Node 20", async () => {
    const { runtimeMismatch } = await import('../local/runtime-check');
    expect(runtimeMismatch(packageJson, 'v20.20.2')).toEqual({
      running: 'v20.20.2',
      pinned: `v${await pinnedRuntime()}`,
    });
  });
});

/*
 * npm ci's postinstall, last step (after the native helpers' rebuild, which would count the linked
 * packages' scripts as its own): installs runtime-deps/ (the packages that declare Node >= 22,
 * the runtime we pin) with the pinned Node, and links each into node_modules, where imports and
 * bundlers find them as if the root had installed them.
 *
 * Why: npm checks every package's engines against the Node that runs npm, and on a machine whose
 * only Node is older (Debian's 20) it warns about each of them, though no code of ours ever runs
 * on that Node. Here npm runs under the pinned Node (npm puts node_modules/.bin first on PATH, so
 * `node` is the `node` package's), and the engines are met.
 *
 * Plain JavaScript: it runs before anything else of ours could be loaded.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const prefix = join(root, 'runtime-deps');
const npmCli = process.env.npm_execpath;
if (!npmCli) {
  console.error('install-runtime-deps: run me through npm (npm ci runs me as its postinstall)');
  process.exit(1);
}

// The parent npm's own settings (its prefix, its command) must not steer the nested one; where
// packages come from (registry, cache, user config) still should.
const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
const env = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name) || keep.has(name.toLowerCase())),
);
execFileSync(process.execPath, [npmCli, 'ci', '--no-audit', '--no-fund', '--ignore-scripts'], {
  cwd: prefix,
  env,
  stdio: 'inherit',
});
// Their patches (runtime-deps/patches) with the root's patch-package.
execFileSync(process.execPath, [join(root, 'node_modules', 'patch-package', 'index.js')], {
  cwd: prefix,
  env,
  stdio: 'inherit',
});

const { dependencies } = JSON.parse(readFileSync(join(prefix, 'package.json'), 'utf8'));
for (const name of Object.keys(dependencies)) {
  const link = join(root, 'node_modules', name);
  const target = join(prefix, 'node_modules', name);
  try {
    lstatSync(link);
    rmSync(link, { recursive: true, force: true });
  } catch {
    // not there yet
  }
  mkdirSync(dirname(link), { recursive: true });
  symlinkSync(relative(dirname(link), target), link, 'dir');
}

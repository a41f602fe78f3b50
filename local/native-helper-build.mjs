/*
 * postinstall: the native helpers must be built for the Node that runs our scripts (the `node`
 * devDependency's, first on npm's PATH), not for whichever Node ran npm. ssh2's own install step
 * builds for the Node that ran it and cannot fetch headers for another from here, so when a helper
 * does not load in this runtime it is rebuilt against the headers that ship with the runtime.
 * ssh2 without its helper falls back to JavaScript ciphers, about 3x slower: that must not pass
 * silently, so a helper that still does not load fails the install.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** Package, and its helper relative to the package. */
const helpers = [
  ['ssh2', 'lib/protocol/crypto/build/Release/sshcrypto.node'],
  ['cpu-features', 'build/Release/cpufeatures.node'],
];

const pathOf = (pkg, file) => join(dirname(require.resolve(`${pkg}/package.json`)), file);
/** In a fresh process: a library that failed to load once stays failed in the process that tried. */
const loads = (pkg, file) =>
  spawnSync(process.execPath, ['-e', `require(${JSON.stringify(pathOf(pkg, file))})`], { stdio: 'ignore' })
    .status === 0;

/**
 * The runtime's own headers: the official build that the `node` package installs (beside its
 * bin/, include/node), or beside the running binary for a Node installed from a tarball.
 */
function runtimeHeaders() {
  const candidates = [dirname(dirname(process.execPath))];
  try {
    const runtime = createRequire(require.resolve('node/package.json'));
    candidates.unshift(dirname(runtime.resolve(`node-${process.platform}-${process.arch}/package.json`)));
  } catch {
    // Not installed through the `node` package.
  }
  return candidates.find((dir) => existsSync(join(dir, 'include', 'node', 'node.h')));
}

const stale = helpers.filter(([pkg, file]) => !loads(pkg, file)).map(([pkg]) => pkg);
if (stale.length > 0) {
  const env = { ...process.env };
  const nodedir = runtimeHeaders();
  if (nodedir) env.npm_config_nodedir = nodedir;
  console.log(`native helpers: rebuilding ${stale.join(', ')} for Node ${process.version}`);
  const rebuilt = spawnSync('npm', ['rebuild', ...stale], { env, stdio: 'inherit' });
  const failed = helpers.filter(([pkg, file]) => stale.includes(pkg) && !loads(pkg, file));
  if (rebuilt.status !== 0 || failed.length > 0) {
    console.error(
      `native helpers: ${failed.map(([pkg]) => pkg).join(', ') || stale.join(', ')} did not build for ` +
        `Node ${process.version}; ssh2 would run its ciphers in JavaScript. Install python3, make and g++ ` +
        '(Debian: apt-get install python3 make g++), then run npm ci again.',
    );
    process.exit(1);
  }
}
console.log(`native helpers: ${helpers.map(([pkg]) => pkg).join(', ')} load in Node ${process.version}`);

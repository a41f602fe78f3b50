/**
 * How every deployable bundle is built, in one place: the stack hands these options to
 * NodejsFunction (which runs the local esbuild CLI), the gateway image's build stage and
 * `bench/bundle-sizes.ts` run them through esbuild's API, and the tests build the very same
 * bundles to invoke them. Nothing here imports aws-cdk-lib, so the Docker build stage can use it.
 */
import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildOptions } from 'esbuild';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Node major version of the Lambda runtime and of the gateway image. */
export const NODE_TARGET = 'node22';

/**
 * ESM output has no `require`, `__filename` or `__dirname`; the CommonJS packages inside the bundle
 * still use them (ssh2 requires Node built-ins and optional modules, and its emscripten-built
 * poly1305 reads `__dirname` as it loads: without the shim a cold start dies with "__dirname is not
 * defined"). Aliased imports so they cannot collide with the bundled code's own; minified bundles
 * rename every top-level binding of their own, so the three names stay free.
 */
export const ESM_SHIM_BANNER = [
  "import { createRequire as __tkCreateRequire } from 'node:module';",
  "import { fileURLToPath as __tkFileURLToPath } from 'node:url';",
  "import { dirname as __tkDirname } from 'node:path';",
  'const require = __tkCreateRequire(import.meta.url);',
  'const __filename = __tkFileURLToPath(import.meta.url);',
  'const __dirname = __tkDirname(__filename);',
].join(' ');

/**
 * The Lambda runtime ships the AWS SDK v3: keeping `@aws-sdk/*` external makes bundles smaller and
 * lets tests mock the very client classes the bundle uses. ssh2 (pulled in by key handling) loads
 * `cpu-features` and its `sshcrypto.node` helper inside try/catch: external, they are simply absent
 * in Lambda and ssh2 falls back to JS (the API only parses and generates keys, never runs a
 * transport). Never `loader: {'.node': 'empty'}`: ssh2 would then believe the helper exists.
 */
export const LAMBDA_EXTERNALS = ['@aws-sdk/*', 'cpu-features', '*.node'];

/** Prefer packages' ESM builds: smaller and tree-shakeable. */
export const MAIN_FIELDS = ['module', 'main'];

export type LambdaBundleName = 'api' | 'sweeper' | 'connect-targets';

/** Lambda entry points, relative to the repository root. */
export const LAMBDA_ENTRIES: Record<LambdaBundleName, string> = {
  api: 'lambda/api/handler.ts',
  sweeper: 'lambda/sweeper/handler.ts',
  'connect-targets': 'lambda/connect-targets/handler.ts',
};

/**
 * Package files the API reads at run time (the renderer of `GET /docs`, lambda/api/routes/docs.ts
 * `DOCS_PACKAGE_FILES`), too large to inline (1.9 MiB against the bundle's 1 MiB target) and only
 * read when the page is asked for. Each is copied to `node_modules/<file>` beside the bundle, where
 * Node's resolution finds it from the bundle as it finds it from the source in the repository.
 */
export const API_BUNDLE_PACKAGE_FILES = [
  'swagger-ui-dist/swagger-ui-bundle.js',
  'swagger-ui-dist/swagger-ui.css',
];

/**
 * The customer console (console/), built beside the API bundle into this directory, where the API
 * finds it (lambda/api/handler.ts): a page, a script and a stylesheet, about 70 KB.
 */
export const CONSOLE_BUNDLE_DIR = 'console';

/** The command that writes the console's files into `dir` (run by bash in the repository). */
export function consoleBuildCommand(dir: string): string {
  return `node --import tsx ${shellQuote(join(REPO_ROOT, 'console', 'build.ts'))} ${shellQuote(dir)}`;
}

/** One POSIX shell word. */
export const shellQuote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

/** The files copied beside a Lambda bundle: from the repository root, to the bundle's directory. */
export function lambdaBundleCopies(name: LambdaBundleName): { from: string; to: string }[] {
  if (name !== 'api') return [];
  return API_BUNDLE_PACKAGE_FILES.map((file) => ({
    from: join('node_modules', file),
    to: join('node_modules', file),
  }));
}

/** NodejsFunction writes ESM bundles as `index.mjs`; the handler is `index.handler`. */
export const LAMBDA_BUNDLE_FILE = 'index.mjs';

export const GATEWAY_ENTRY = 'fargate/main.ts';
/** `.mjs`: the image has no package.json saying `"type": "module"`. */
export const GATEWAY_BUNDLE_FILE = 'main.mjs';
/**
 * The key crypto pool's worker, a second entry emitted beside the gateway bundle: the pool finds
 * it as `./crypto-worker.mjs` relative to the bundle (shared/crypto-pool/pooled-key-crypto.ts),
 * as it finds the tsx shim of the same name beside its source.
 */
export const KEY_CRYPTO_WORKER_ENTRY = 'shared/crypto-pool/key-worker.ts';
export const KEY_CRYPTO_WORKER_FILE = 'crypto-worker.mjs';

/** The esbuild options NodejsFunction derives from the stack's bundling props, for a Lambda bundle. */
export function lambdaBuildOptions(name: LambdaBundleName, outdir: string): BuildOptions {
  return {
    entryPoints: [join(REPO_ROOT, LAMBDA_ENTRIES[name])],
    outfile: join(outdir, LAMBDA_BUNDLE_FILE),
    bundle: true,
    platform: 'node',
    target: NODE_TARGET,
    format: 'esm',
    minify: true,
    external: LAMBDA_EXTERNALS,
    banner: { js: ESM_SHIM_BANNER },
    mainFields: MAIN_FIELDS,
    logLevel: 'warning',
  };
}

/**
 * The gateway bundle for the Fargate image: everything inside (the container has no AWS SDK), its
 * key crypto worker beside it, and ssh2's native crypto helper copied next to the bundle with the
 * `require` rewritten to it, so AES-GCM runs through the helper. Building fails if the helper was never built (ssh2 skips
 * it silently when its install fails), which is the point. `cpu-features` only orders ssh2's
 * default ciphers, which the gateway sets itself: left out.
 */
export function gatewayBuildOptions(outdir: string): BuildOptions {
  return {
    entryPoints: [
      join(REPO_ROOT, GATEWAY_ENTRY),
      { in: join(REPO_ROOT, KEY_CRYPTO_WORKER_ENTRY), out: KEY_CRYPTO_WORKER_FILE.replace(/\.mjs$/, '') },
    ],
    outdir,
    entryNames: '[name]',
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    target: NODE_TARGET,
    format: 'esm',
    minify: true,
    external: ['cpu-features'],
    loader: { '.node': 'copy' },
    banner: { js: ESM_SHIM_BANNER },
    mainFields: MAIN_FIELDS,
    logLevel: 'warning',
  };
}

export type BundleName = LambdaBundleName | 'gateway';
export const BUNDLE_NAMES: BundleName[] = ['api', 'sweeper', 'connect-targets', 'gateway'];

export interface BuiltBundle {
  name: BundleName;
  outdir: string;
  /** The JavaScript entry file to import or run. */
  file: string;
  /** Size of the JavaScript file. */
  bytes: number;
  /**
   * Every file under `outdir` (its path there) with its size: the gateway's native helper, the
   * API's docs renderer.
   */
  files: { name: string; bytes: number }[];
}

/** Builds one bundle into a fresh `outdir` with esbuild's API. */
export async function buildBundle(name: BundleName, outdir: string): Promise<BuiltBundle> {
  const { build } = await import('esbuild');
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  const options = name === 'gateway' ? gatewayBuildOptions(outdir) : lambdaBuildOptions(name, outdir);
  await build(options);
  // What NodejsFunction's afterBundling hook does for the stack (lambda-function.ts).
  if (name !== 'gateway') {
    for (const { from, to } of lambdaBundleCopies(name)) {
      await mkdir(dirname(join(outdir, to)), { recursive: true });
      await copyFile(join(REPO_ROOT, from), join(outdir, to));
    }
  }
  if (name === 'api') {
    const { writeConsole } = await import('../../console/build');
    await writeConsole(join(outdir, CONSOLE_BUNDLE_DIR));
  }
  const file = join(outdir, name === 'gateway' ? GATEWAY_BUNDLE_FILE : LAMBDA_BUNDLE_FILE);
  const entries = await readdir(outdir, { recursive: true, withFileTypes: true });
  const files = await Promise.all(
    entries
      .filter((entry) => entry.isFile())
      .map(async (entry) => {
        const path = join(entry.parentPath, entry.name);
        return { name: relative(outdir, path), bytes: (await stat(path)).size };
      }),
  );
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { name, outdir, file, bytes: (await stat(file)).size, files };
}

/**
 * Sizes of the deployable bundles, built exactly as the stack (Lambda) and the image (gateway)
 * build them, and how long a fresh Node process takes to import each Lambda bundle (a cold start's
 * module load, before any AWS call). DESIGN.md's targets: API bundle ≤ 1 MB, module load ≤ 300 ms.
 *
 *   node --import tsx bench/bundle-sizes.ts           # a table
 *   node --import tsx bench/bundle-sizes.ts --json    # one JSON object
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { BUNDLE_NAMES, type BundleName, buildBundle, REPO_ROOT } from '../cdk/lib/bundles';

export const API_BUNDLE_TARGET_BYTES = 1024 * 1024;
export const API_LOAD_TARGET_MS = 300;

export interface BundleSize {
  name: BundleName;
  /** The JavaScript file, minified. */
  bytes: number;
  /** The same gzipped: roughly what a deployment package or image layer carries. */
  gzipBytes: number;
  /** Files beside it (the gateway's native crypto helper and key crypto worker, the API's docs renderer). */
  extraBytes: number;
  buildMs: number;
  /** Lambda bundles: `import()` in a fresh process (median of 3), and the AWS SDK's share of it. */
  loadMs?: number;
  sdkLoadMs?: number;
  /** Only the API bundle has targets. */
  target?: { bytes: number; loadMs: number; met: boolean };
}

/**
 * `import()` of the bundle in fresh processes (median of 3), split into the AWS SDK packages it
 * imports (external: the Lambda runtime provides them, but loads them all the same) and the rest.
 */
async function loadTime(file: string): Promise<{ sdkMs: number; ownMs: number }> {
  const code = await readFile(file, 'utf8');
  const sdk = [...new Set([...code.matchAll(/from\s*"(@aws-sdk\/[^"]+)"/g)].map((m) => m[1]))];
  const script = [
    'let t = performance.now();',
    ...sdk.map((name) => `await import(${JSON.stringify(name)});`),
    'const sdk = performance.now() - t; t = performance.now();',
    `await import(${JSON.stringify(pathToFileURL(file).href)});`,
    'process.stdout.write(JSON.stringify([sdk, performance.now() - t]));',
  ].join(' ');
  const runs = [0, 1, 2].map(() => {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: dirname(file),
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    });
    const [sdkMs = Number.NaN, ownMs = Number.NaN] = JSON.parse(out) as number[];
    return { sdkMs, ownMs };
  });
  const median = runs.sort((a, b) => a.sdkMs + a.ownMs - (b.sdkMs + b.ownMs))[1] ?? {
    sdkMs: Number.NaN,
    ownMs: Number.NaN,
  };
  return { sdkMs: Math.round(median.sdkMs), ownMs: Math.round(median.ownMs) };
}

export async function bundleSizes(): Promise<BundleSize[]> {
  // Inside the repository, like the test bundles: an external `@aws-sdk/*` resolves from here.
  const root = join(
    REPO_ROOT,
    'node_modules',
    '.cache',
    'tunnelkeeper-bench-bundles',
    randomBytes(4).toString('hex'),
  );
  try {
    const sizes: BundleSize[] = [];
    for (const name of BUNDLE_NAMES) {
      const started = performance.now();
      const built = await buildBundle(name, join(root, name));
      const buildMs = Math.round(performance.now() - started);
      const gzipBytes = gzipSync(await readFile(built.file)).length;
      const extraBytes = built.files.reduce((sum, f) => sum + f.bytes, 0) - built.bytes;
      // The gateway's module load is part of a task start, not of a request: not measured.
      const load = name === 'gateway' ? undefined : await loadTime(built.file);
      const loadMs = load ? load.sdkMs + load.ownMs : undefined;
      const met = built.bytes <= API_BUNDLE_TARGET_BYTES && (loadMs ?? 0) <= API_LOAD_TARGET_MS;
      sizes.push({
        name,
        bytes: built.bytes,
        gzipBytes,
        extraBytes,
        buildMs,
        ...(load ? { loadMs, sdkLoadMs: load.sdkMs } : {}),
        ...(name === 'api'
          ? { target: { bytes: API_BUNDLE_TARGET_BYTES, loadMs: API_LOAD_TARGET_MS, met } }
          : {}),
      });
    }
    return sizes;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

async function main(): Promise<void> {
  const sizes = await bundleSizes();
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ bundles: sizes })}\n`);
  } else {
    for (const s of sizes) {
      const target = s.target
        ? `  target ≤ ${kib(s.target.bytes)}, load ≤ ${s.target.loadMs} ms: ${s.target.met ? 'met' : 'MISSED'}`
        : '';
      const extra =
        s.extraBytes > 0
          ? ` + ${kib(s.extraBytes)} beside it (${s.name === 'api' ? 'docs page renderer' : 'native helper, crypto worker'})`
          : '';
      const load =
        s.loadMs === undefined ? '' : `, loads in ${s.loadMs} ms (AWS SDK ${s.sdkLoadMs} ms of it)`;
      process.stdout.write(
        `bundle ${s.name.padEnd(8)} ${kib(s.bytes).padStart(11)} minified, ${kib(s.gzipBytes).padStart(10)} gzip${extra}` +
          `${load} (built in ${s.buildMs} ms)${target}\n`,
      );
    }
  }
  if (sizes.some((s) => s.target && !s.target.met)) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`bundle sizes: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

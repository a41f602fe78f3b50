/**
 * Builds the customer console (console/src, Preact) with esbuild, in memory: an `index.html` and
 * its script and stylesheet, named by content hash so the browser may cache them for good.
 *
 * Why esbuild rather than Vite: esbuild is already pinned for the AWS bundles (cdk/lib/bundles.ts)
 * and builds this app in well under a second, so `npm start` builds it afresh on every start and
 * there is no built copy to go stale, no build step in `npm ci` and nothing to ignore in git; Vite
 * would add Rollup (with its native binaries) and a dozen packages for a dev server this small app
 * does not need. `npm run console:build -- <dir>` (the AWS bundle) writes the same files to disk.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONSOLE_INDEX, type ConsoleFile, typeOf } from '../lambda/api/console-files';

const CONSOLE_DIR = fileURLToPath(new URL('.', import.meta.url));
const ENTRY = join(CONSOLE_DIR, 'src', 'main.tsx');

/** The console's files: the page, its script and its stylesheet. */
export async function buildConsole(): Promise<ConsoleFile[]> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    outdir: '/console-out',
    entryNames: 'console-[hash]',
    format: 'esm',
    target: ['chrome120', 'firefox121', 'safari17'],
    minify: true,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    legalComments: 'none',
    logLevel: 'silent',
    metafile: false,
  });
  const files: ConsoleFile[] = result.outputFiles.map((file) => {
    const name = basename(file.path);
    const type = typeOf(name);
    if (!type) throw new Error(`console build wrote an unexpected file: ${name}`);
    return { name, type, body: file.contents };
  });
  const script = files.find((f) => f.name.endsWith('.js'));
  const style = files.find((f) => f.name.endsWith('.css'));
  if (!script || !style) throw new Error('console build lacks its script or stylesheet');
  const page = indexHtml(script.name, style.name);
  return [{ name: CONSOLE_INDEX, type: typeOf(CONSOLE_INDEX) ?? '', body: Buffer.from(page) }, ...files];
}

/**
 * The page: no inline script or style, so the Content-Security-Policy allows neither. URLs are
 * relative to the page (`/`), so it also works where the API sits under a path.
 */
function indexHtml(script: string, style: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tunnelkeeper console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="console/${style}">
<script type="module" src="console/${script}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The Tunnelkeeper console needs JavaScript; the API reference is at <a href="docs">docs</a>.</noscript>
</body>
</html>
`;
}

/** Writes the console's files into `dir` (for the API Lambda, which serves them from disk). */
export async function writeConsole(dir: string): Promise<string[]> {
  const files = await buildConsole();
  await mkdir(dir, { recursive: true });
  await Promise.all(files.map((f) => writeFile(join(dir, f.name), f.body)));
  return files.map((f) => f.name);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: node --import tsx console/build.ts <output directory>\n');
    process.exit(2);
  }
  writeConsole(resolve(dir)).then(
    (names) => process.stdout.write(`console: wrote ${names.join(', ')} to ${dir}\n`),
    (err: unknown) => {
      process.stderr.write(`console: build failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}

/**
 * The gateway image, checked without Docker (there is none here, and tests must not need it): the
 * Dockerfile's essentials, a build context (.dockerignore) that holds everything the gateway
 * imports, and the bundle its build stage produces, native crypto helper included.
 */
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BuiltBundle,
  buildBundle,
  GATEWAY_BUNDLE_FILE,
  gatewayBuildOptions,
  KEY_CRYPTO_WORKER_FILE,
  REPO_ROOT,
} from '../../cdk/lib/bundles';
import { GATEWAY_HEALTH_PORT, GATEWAY_SSH_PORT } from '../../cdk/lib/ports';
import { GATEWAY_NODE_FLAGS } from '../../fargate/gc-tuning';
import { startKeyCrypto } from '../../shared/crypto-pool/pooled-key-crypto';
import { parsePrivateKey } from '../../shared/keys';
import { silentLogger } from '../../shared/logger';
import { keygen } from '../helpers/keygen';
import { startScriptNodeArgs } from '../helpers/local-stack';

interface Stage {
  from: string;
  name?: string;
  lines: string[];
}

let dockerfile: string;
let stages: Stage[];
let dockerignore: string[];

/** Instructions per stage, continuation lines joined, comments dropped. */
function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const args: Record<string, string> = {};
  const parsed: Stage[] = [];
  for (const line of instructions) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from?.[1]) {
      const image = from[1].replace(/\$\{(\w+)\}/g, (_, name: string) => args[name] ?? '');
      parsed.push({ from: image, name: from[2], lines: [] });
    } else if (parsed.length === 0) {
      const arg = /^ARG\s+(\w+)=(\S+)$/.exec(line);
      if (arg?.[1] && arg[2]) args[arg[1]] = arg[2];
    } else {
      parsed.at(-1)?.lines.push(line);
    }
  }
  return { args, stages: parsed };
}

/** Paths the build stage copies from the context. */
const copiedPaths = (stage: Stage): string[] =>
  stage.lines
    .filter((line) => /^COPY\s/.test(line) && !line.includes('--from='))
    .flatMap((line) => line.split(/\s+/).slice(1, -1));

beforeAll(async () => {
  dockerfile = await readFile(join(REPO_ROOT, 'fargate/Dockerfile'), 'utf8');
  stages = parseDockerfile(dockerfile).stages;
  dockerignore = (await readFile(join(REPO_ROOT, '.dockerignore'), 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
});

describe('fargate/Dockerfile', () => {
  it('has a build stage and a Node 22 slim runtime stage', () => {
    expect(stages).toHaveLength(2);
    const [buildStage, runtime] = stages as [Stage, Stage];
    expect(buildStage.name).toBe('build');
    expect(runtime.from).toMatch(/^node:22[-.\w]*-slim$/);
    expect(buildStage.from).toBe(runtime.from); // same libc and Node ABI for the native helper
  });

  it("builds ssh2's native helper in the build stage and fails when it is missing", () => {
    const run = (stages[0] as Stage).lines.filter((l) => l.startsWith('RUN')).join('\n');
    expect(run).toMatch(/apt-get install[^\n]*python3[^\n]*make[^\n]*g\+\+/);
    expect(run).toMatch(/npm ci\b/);
    expect(run).toContain("require('ssh2/lib/protocol/crypto.js').bindingAvailable");
    expect(run).toContain('cdk/bin/bundle.ts gateway /out');
  });

  it('applies patches/ during npm ci and fails unless ssh2 took its key exchange patch', async () => {
    const lines = (stages[0] as Stage).lines;
    const copyPatches = lines.indexOf('COPY patches ./patches');
    const npmCi = lines.findIndex((l) => /^RUN npm ci\b/.test(l));
    expect(copyPatches).toBeGreaterThanOrEqual(0);
    expect(copyPatches).toBeLessThan(npmCi);
    expect(lines[npmCi]).toContain("typeof require('ssh2/lib/protocol/kex.js').registerKeyExchange");
    const manifest = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(manifest.scripts.postinstall).toMatch(/^patch-package && /);
  });

  it('runs the bundle as the unprivileged node user with nothing but the build output', () => {
    const runtime = stages[1] as Stage;
    const user = runtime.lines.filter((l) => l.startsWith('USER'));
    expect(user).toEqual(['USER node']);
    const userAt = runtime.lines.indexOf('USER node');
    const cmdAt = runtime.lines.findIndex((l) => l.startsWith('CMD'));
    expect(userAt).toBeGreaterThanOrEqual(0);
    expect(cmdAt).toBeGreaterThan(userAt);
    const command = ['node', ...GATEWAY_NODE_FLAGS, `/app/${GATEWAY_BUNDLE_FILE}`];
    expect(runtime.lines[cmdAt]).toBe(`CMD [${command.map((a) => JSON.stringify(a)).join(', ')}]`);
    expect(runtime.lines.filter((l) => l.startsWith('COPY'))).toEqual([
      'COPY --from=build --chown=root:root /out/ /app/',
    ]);
    expect(runtime.lines.join('\n')).not.toMatch(/npm |apt-get|node_modules/);
    expect(runtime.lines).toContain(`EXPOSE ${GATEWAY_SSH_PORT} ${GATEWAY_HEALTH_PORT}`);
  });

  it('gives node the same gateway flags as npm start does', async () => {
    const args = await startScriptNodeArgs(); // rejects unless npm start runs node itself
    expect(GATEWAY_NODE_FLAGS.length).toBeGreaterThan(0);
    for (const flag of GATEWAY_NODE_FLAGS) expect(args).toContain(flag);
  });

  it('copies only what .dockerignore lets into the context, and all of it exists', async () => {
    const copied = copiedPaths(stages[0] as Stage);
    expect(copied.length).toBeGreaterThan(0);
    for (const path of copied) {
      await expect(stat(join(REPO_ROOT, path)), path).resolves.toBeDefined();
      const normalized = path.replace(/^\.\//, '').replace(/\/$/, '');
      const allowed = dockerignore.some(
        (rule) => rule.startsWith('!') && normalized.startsWith(rule.slice(1).replace(/\/$/, '')),
      );
      expect(allowed, `${path} allowed by .dockerignore`).toBe(true);
    }
    expect(dockerignore[0]).toBe('*'); // an allowlist: nothing else (node_modules, cdk.out, .data) leaks in
  });

  it('copies every source file the gateway bundle imports', async () => {
    const result = await build({
      ...gatewayBuildOptions('/nonexistent'),
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const sources = Object.keys(result.metafile.inputs).filter((path) => !path.includes('node_modules'));
    const copied = copiedPaths(stages[0] as Stage).map((p) => p.replace(/\/$/, ''));
    const missing = sources.filter(
      (source) => !copied.some((c) => source === c || source.startsWith(`${c}/`)),
    );
    expect(sources.length).toBeGreaterThan(10);
    expect(missing).toEqual([]);
  });
});

describe('the gateway bundle the build stage produces', () => {
  let bundle: BuiltBundle;

  beforeAll(async () => {
    bundle = await buildBundle(
      'gateway',
      join(REPO_ROOT, 'node_modules/.cache/tunnelkeeper-test-bundles/gateway-image'),
    );
  }, 60_000);

  afterAll(async () => {
    const { rm } = await import('node:fs/promises');
    await rm(bundle.outdir, { recursive: true, force: true });
  });

  it("is one ESM file with its key crypto worker and ssh2's native helper beside it, which loads and offers AES-GCM", async () => {
    const names = bundle.files.map((f) => f.name).sort();
    expect(names).toHaveLength(3);
    expect(names.slice(0, 2)).toEqual([KEY_CRYPTO_WORKER_FILE, GATEWAY_BUNDLE_FILE]);
    const helper = names[2] as string;
    expect(helper).toMatch(/^sshcrypto-[A-Z0-9]+\.node$/);
    const code = await readFile(bundle.file, 'utf8');
    expect(code).toContain(`"./${helper}"`); // the require esbuild rewrote to the copied helper
    const binding = createRequire(bundle.file)(`./${helper}`);
    expect(typeof binding.AESGCMCipher).toBe('function');
    console.info(`figure: gateway bundle ${(bundle.bytes / 1024).toFixed(0)} KiB + helper`);
  });

  it("carries ssh2 as patched and the post-quantum KEMs' WebAssembly inside (no file beside it)", async () => {
    const code = await readFile(bundle.file, 'utf8');
    expect(code).toContain('registerKeyExchange');
    expect(code).toContain('sntrup761x25519-sha512@openssh.com');
    expect(code).toContain('mlkem768x25519-sha256');
    // liboqs-js's loaders, as patched: bundled modules, not a path resolved at run time.
    expect(code).not.toContain('dist/sntrup761');
    expect(code).not.toContain('dist/ml-kem-768');
    expect(code).toContain('_OQS_KEM_encaps'); // liboqs' C API, exported by the embedded WebAssembly
    // main.test.ts runs this bundle and negotiates sntrup761x25519 with it.
  });

  it('finds its key crypto worker beside itself, and the worker decrypts a passphrase key', async () => {
    const code = await readFile(bundle.file, 'utf8');
    // The pool's entry, resolved against the bundle's own URL at run time (not the source tree's).
    expect(code).toContain(`new URL("./${KEY_CRYPTO_WORKER_FILE}",import.meta.url)`);
    const worker = join(bundle.outdir, KEY_CRYPTO_WORKER_FILE);
    expect(await readFile(worker, 'utf8')).not.toMatch(/from\s*"tsx|tsImport/); // plain JavaScript
    const crypto = await startKeyCrypto(
      { workers: 1, maxQueue: 1, taskTimeoutMs: 30_000 },
      silentLogger,
      pathToFileURL(worker),
    );
    try {
      const key = await keygen({ type: 'ecdsa', bits: 256, passphrase: 'bundled worker', rounds: 4 });
      const decrypted = await crypto.decryptPrivateKey(key.privateKey, 'bundled worker');
      expect(parsePrivateKey(decrypted, undefined, 'k').publicKey).toBe(
        key.publicKey.split(' ').slice(0, 2).join(' '),
      );
      expect(crypto.stats?.completed).toBe(1);
    } finally {
      await crypto.close();
    }
  });
});

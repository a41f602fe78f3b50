/**
 * The app synthesised for real, as `npm run synth` does it (issue 6, acceptance 1): in a child
 * process, with bundling, the nag checks, no AWS credentials, and a `docker` on PATH that records
 * any call and fails. The Lambda bundles NodejsFunction writes must be byte for byte the ones
 * esbuild builds from `cdk/lib/bundles.ts` (what the bundle tests invoke), and the gateway image is
 * only staged (its context filtered by .dockerignore), never built.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle, LAMBDA_BUNDLE_FILE, REPO_ROOT } from '../../cdk/lib/bundles';
import { STACK_NAME } from '../../cdk/lib/tunnelkeeper-stack';

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON is untyped
type Json = any;

let work: string;
let outdir: string;
let dockerCalls: string;
let synth: { code: number; stdout: string; stderr: string; ms: number };

async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await filesUnder(dir, path)));
    else out.push(path);
  }
  return out.sort();
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tk-synth-'));
  outdir = join(work, 'cdk.out');
  const bin = join(work, 'bin');
  dockerCalls = join(work, 'docker-calls');
  await import('node:fs/promises').then((fs) => fs.mkdir(bin));
  await writeFile(join(bin, 'docker'), `#!/bin/sh\necho "$@" >> ${dockerCalls}\nexit 1\n`);
  await chmod(join(bin, 'docker'), 0o755);
  const env: NodeJS.ProcessEnv = {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: work,
    CDK_OUTDIR: outdir,
    // No credentials anywhere: the stack is environment-agnostic and synth must not look for any.
    AWS_CONFIG_FILE: join(work, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  const started = Date.now();
  synth = await new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'cdk/bin/app.ts'],
      { cwd: REPO_ROOT, env, timeout: 170_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr, ms: Date.now() - started }),
    );
  });
}, 180_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('synth with bundling', () => {
  it('writes the cloud assembly without Docker or AWS credentials, well within 3 minutes', async () => {
    expect(synth.stderr).not.toMatch(/ERROR|Validation failed/);
    expect(synth.code).toBe(0);
    expect(synth.ms).toBeLessThan(180_000);
    await expect(stat(dockerCalls)).rejects.toThrow(/ENOENT/);
    const template = JSON.parse(await readFile(join(outdir, `${STACK_NAME}.template.json`), 'utf8'));
    expect(Object.keys(template.Resources).length).toBeGreaterThan(50);
    console.info(`figure: synth with bundling and nag took ${synth.ms} ms`);
  });

  it.each(['api', 'sweeper', 'connect-targets'] as const)(
    'bundles the %s Lambda exactly as esbuild builds it from cdk/lib/bundles.ts',
    async (name) => {
      const template = JSON.parse(await readFile(join(outdir, `${STACK_NAME}.template.json`), 'utf8'));
      const construct = { api: 'Api', sweeper: 'Sweeper', 'connect-targets': 'ConnectTargets' }[name];
      const [, fn] = Object.entries<Json>(template.Resources).find(
        ([id, r]) => r.Type === 'AWS::Lambda::Function' && id.startsWith(`${construct}Function`),
      ) ?? [undefined, undefined];
      // The code's S3 key is the asset hash; the asset is staged as `asset.<hash>`.
      const hash = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
      const assetDir = join(outdir, `asset.${hash}`);
      const ours = await buildBundle(name, join(work, 'esbuild', name));
      // The bundle and what is copied beside it (the API's docs renderer), file for file.
      const files = await filesUnder(assetDir);
      expect(files).toContain(LAMBDA_BUNDLE_FILE);
      expect(files).toEqual(ours.files.map((f) => f.name).sort());
      for (const file of files) {
        expect((await readFile(join(assetDir, file))).equals(await readFile(join(ours.outdir, file)))).toBe(
          true,
        );
      }
    },
  );

  it('stages the gateway image context (no build) with the Dockerfile, for linux/arm64', async () => {
    const assets = JSON.parse(await readFile(join(outdir, `${STACK_NAME}.assets.json`), 'utf8'));
    const images = Object.values<Json>(assets.dockerImages);
    expect(images).toHaveLength(1);
    const [image] = images;
    expect(image.source).toMatchObject({ dockerFile: 'fargate/Dockerfile', platform: 'linux/arm64' });
    const files = await filesUnder(join(outdir, image.source.directory));
    expect(files).toEqual(
      expect.arrayContaining([
        '.dockerignore',
        'package.json',
        'package-lock.json',
        'patches/ssh2+1.17.0.patch',
        'local/install-runtime-deps.mjs',
        'runtime-deps/package.json',
        'runtime-deps/package-lock.json',
        'runtime-deps/patches/@oqs+liboqs-js+0.15.1.patch',
        'tsconfig.json',
        'fargate/Dockerfile',
        'fargate/main.ts',
        'cdk/lib/bundles.ts',
        'cdk/bin/bundle.ts',
        'shared/config.ts',
      ]),
    );
    // Only what the build stage reads: no node_modules, no assembly inside the assembly, no tests.
    const outside = files.filter(
      (f) =>
        !/^(\.dockerignore|package(-lock)?\.json|patches\/|runtime-deps\/(package(-lock)?\.json|patches\/)|local\/(install-runtime-deps|native-helper-build)\.mjs|tsconfig\.json|shared\/|fargate\/|cdk\/lib\/bundles\.ts|cdk\/bin\/bundle\.ts)/.test(
          f,
        ),
    );
    expect(outside).toEqual([]);
  });
});

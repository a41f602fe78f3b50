/**
 * A full disk under `npm start` (issue 12): creating a tunnel answers 503 `unavailable` saying
 * which store is full, nothing half-written remains (no orphan secret, no tunnel without its
 * secret), reads go on, /readyz says not ready, and writes work again once there is room. DATA_DIR
 * (the secret store) and its `dynamodb` folder (DynamoDB Local's files) are two small tmpfs mounts,
 * so each can be filled alone.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanups } from '../helpers/cleanups';
import { requireTools } from '../helpers/customer';
import { apiClient } from '../helpers/http-api';
import { disposeStacks, type StartedStack, startStack } from '../helpers/local-stack';
import { waitFor } from '../helpers/wait-for';

const standardBody = (name: string) => ({
  type: 'standard',
  name,
  ssh: { host: 'bastion.example.com', user: 'tunnel' },
  service: { host: '10.0.0.5', port: 5432 },
});

/** Fills the file system holding `dir` to the last byte with one file; returns its path. */
/** Creates tried on a full table disk before one must be refused. */
const MAX_CREATES_UNTIL_FULL = 20;

function fill(dir: string): string {
  const filler = join(dir, `filler-${randomBytes(4).toString('hex')}`);
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' });
  } catch {
    // dd stops with "No space left on device": that is the point
  }
  return filler;
}

describe('npm start on a full disk', () => {
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;
  const cleanups = new Cleanups();
  const stacks: StartedStack[] = [];
  let dataDir = '';
  let stack: StartedStack;

  beforeAll(async () => {
    requireTools('mount', 'umount', 'dd', 'java');
    dataDir = await mkdtemp(join(tmpdir(), 'tk-full-'));
    cleanups.add(() => rm(dataDir, { recursive: true, force: true }));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0700', 'tmpfs', dataDir]);
    cleanups.add(async () => execFileSync('umount', ['-l', dataDir]));
    await mkdir(join(dataDir, 'dynamodb'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0700', 'tmpfs', join(dataDir, 'dynamodb')]);
    cleanups.add(async () => execFileSync('umount', ['-l', join(dataDir, 'dynamodb')]));
    stack = await startStack(
      {
        DATA_DIR: dataDir,
        DYNAMODB_ENDPOINT: '',
        BOOTSTRAP_API_KEY: apiKey,
        ADMIN_TOKEN: `tka_${randomBytes(24).toString('base64url')}`,
        TUNNEL_PORT_RANGE: '11600-11699',
        LOG_LEVEL: 'debug',
      },
      60_000,
      'node',
    );
    stacks.push(stack);
  }, 90_000);

  afterAll(async () => {
    try {
      await disposeStacks(stacks);
    } finally {
      await cleanups.runAll();
    }
  });

  it('answers 503 naming the full store, leaves nothing half-written, and writes again once there is room', async () => {
    const api = apiClient(() => stack.baseUrl, apiKey);
    expect((await api.call('POST', '/v1/tunnels', standardBody('before'))).status).toBe(201);
    const secretFiles = async () =>
      (await readdir(join(dataDir, 'secrets'))).filter((f) => f.endsWith('.secret'));
    const secretsBefore = await secretFiles();
    const readiness = async () => {
      const res = await fetch(`${stack.baseUrl}/readyz`);
      return {
        status: res.status,
        body: (await res.json()) as { checks: Record<string, { ok: boolean; error?: string }> },
      };
    };
    /** Readiness once its cached answer (a second) has made way for one that satisfies `accept`. */
    const readinessWhen = (accept: (r: Awaited<ReturnType<typeof readiness>>) => boolean) =>
      waitFor(
        async () => {
          const r = await readiness();
          return accept(r) ? r : undefined;
        },
        5_000,
        { what: 'readiness to change', intervalMs: 200 },
      );

    // DynamoDB Local's disk full: the secret goes in first, the table refuses, the secret goes away.
    // SQLite may still fit a few writes into free pages of its files: those creates succeed whole.
    const tableFiller = fill(join(dataDir, 'dynamodb'));
    const accepted: string[] = [];
    let refused: Awaited<ReturnType<typeof api.call>> | undefined;
    for (let i = 0; i < MAX_CREATES_UNTIL_FULL && !refused; i++) {
      const res = await api.call('POST', '/v1/tunnels', standardBody(`table-full-${i}`));
      if (res.status === 201) accepted.push(`table-full-${i}`);
      else refused = res;
    }
    if (!refused) throw new Error(`${MAX_CREATES_UNTIL_FULL} creates all succeeded on a full disk`);
    expect(refused.status).toBe(503);
    expect(refused.json.error).toMatchObject({
      code: 'unavailable',
      details: { dependency: 'table', reason: 'full' },
    });
    expect(Number(refused.headers.get('Retry-After'))).toBeGreaterThan(0);
    expect(await secretFiles()).toHaveLength(secretsBefore.length + accepted.length);
    const listed = await api.call('GET', '/v1/tunnels');
    expect(listed.status).toBe(200);
    expect(listed.json.items.map((t: { name: string }) => t.name).sort()).toEqual(
      ['before', ...accepted].sort(),
    );
    const notReady = await readinessWhen((r) => r.status === 503);
    expect(notReady.body.checks.storage).toMatchObject({ ok: false, error: expect.stringMatching(/full/) });
    await rm(tableFiller);
    expect((await api.call('POST', '/v1/tunnels', standardBody('after-table'))).status).toBe(201);

    // The secret store's disk full: refused before anything is written.
    const secretsFiller = fill(dataDir);
    const noRoom = await api.call('POST', '/v1/tunnels', standardBody('secrets-full'));
    expect(noRoom.status).toBe(503);
    expect(noRoom.json.error).toMatchObject({
      code: 'unavailable',
      details: { dependency: 'secret store', reason: 'full' },
    });
    const secretsNotReady = await readinessWhen((r) => r.body.checks.secrets?.ok === false);
    expect(secretsNotReady.status).toBe(503);
    await rm(secretsFiller);
    expect((await api.call('POST', '/v1/tunnels', standardBody('after-secrets'))).status).toBe(201);

    // Consistent: every accepted tunnel, each with its secret, and ready again.
    const names = (await api.call('GET', '/v1/tunnels')).json.items.map((t: { name: string }) => t.name);
    expect(names.sort()).toEqual(['after-secrets', 'after-table', 'before', ...accepted].sort());
    expect(await secretFiles()).toHaveLength(secretsBefore.length + accepted.length + 2);
    await readinessWhen((r) => r.status === 200);
  }, 120_000);
});

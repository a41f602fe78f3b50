/**
 * `npm start` with a configuration it cannot use stops at once, before it starts or writes
 * anything, with one line that names the variable and the bad entry.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startScriptNodeArgs } from '../helpers/local-stack';

const REPO_ROOT = new URL('../..', import.meta.url).pathname;

describe('npm start with a bad configuration', () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tk-bad-config-'));
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  it('refuses an EGRESS_IPS entry that is not an IP address, naming it', async () => {
    const args = await startScriptNodeArgs();
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        args,
        {
          cwd: REPO_ROOT,
          env: {
            ...process.env,
            DATA_DIR: dataDir,
            PORT: '0',
            SSH_PORT: '0',
            EGRESS_IPS: '203.0.113.10,nat.example.com',
          },
          timeout: 20_000,
        },
        (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
      );
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      'tunnelkeeper: failed to start: invalid configuration: EGRESS_IPS: not an IP address: "nat.example.com" (expected e.g. 203.0.113.10,2001:db8::1)',
    );
    expect(result.stdout).toBe('');
    expect(await readdir(dataDir)).toEqual([]);
  });
});

/**
 * The worker pool's mechanics with real worker processes running test tasks
 * (fixtures/test-worker.ts): a task that blocks its worker as a key derivation does, a crash,
 * failures. Bounds, queue, deadline, restarts and shutdown, each observed from the outside.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TaskFailedError, WorkerPool, type WorkerPoolOptions } from '../../../shared/crypto-pool/pool';
import { OverloadedError } from '../../../shared/errors';
import { createLogger } from '../../../shared/logger';
import { waitFor, withTimeout } from '../../helpers/wait-for';

const ENTRY = new URL('./fixtures/test-worker.mjs', import.meta.url);
const OWNER = new URL('./fixtures/pool-owner.ts', import.meta.url);

/** Whether a process exists (signal 0 checks without sending anything). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
const Block = z.object({ start: z.number(), end: z.number(), pid: z.number() });

const pools: WorkerPool[] = [];
const logs: { msg: string; level: string }[] = [];

async function startPool(options: Partial<WorkerPoolOptions> = {}): Promise<WorkerPool> {
  const pool = new WorkerPool({
    name: 'test pool',
    entry: ENTRY,
    size: 1,
    maxQueue: 8,
    taskTimeoutMs: 10_000,
    logger: createLogger('debug', (line) => logs.push(JSON.parse(line))),
    restart: { initialMs: 10, maxMs: 100, healthyAfterMs: 60_000 },
    ...options,
  });
  pools.push(pool);
  await pool.start();
  return pool;
}

const block = (pool: WorkerPool, ms: number) => pool.run('block', ms, Block);

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
  logs.length = 0;
});

describe('WorkerPool', () => {
  it('runs at most `size` tasks at once, each in a worker process of its own, never this process', async () => {
    const pool = await startPool({ size: 2 });
    const runs = await Promise.all(Array.from({ length: 6 }, () => block(pool, 150)));
    const workers = new Set(runs.map((r) => r.pid));
    expect(workers.size).toBe(2);
    expect(workers.has(process.pid)).toBe(false);
    expect([...workers].sort()).toEqual([...pool.stats.workerPids].sort());
    // At every task's start, at most two tasks (itself included) were running.
    for (const run of runs) {
      const overlapping = runs.filter((r) => r.start <= run.start && r.end > run.start);
      expect(overlapping.length).toBeLessThanOrEqual(2);
    }
    expect(pool.stats).toMatchObject({ completed: 6, busy: 0, queued: 0 });
  });

  it('refuses a task beyond the queue at once with OverloadedError and a Retry-After', async () => {
    const pool = await startPool({ size: 1, maxQueue: 2 });
    const admitted = [block(pool, 300), block(pool, 10), block(pool, 10)];
    const started = performance.now();
    const refused = await block(pool, 10).catch((err: unknown) => err);
    expect(performance.now() - started).toBeLessThan(100); // not after waiting
    expect(refused).toBeInstanceOf(OverloadedError);
    expect((refused as OverloadedError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect((refused as OverloadedError).message).toMatch(/queue full/);
    await expect(Promise.all(admitted)).resolves.toHaveLength(3);
    expect(pool.stats).toMatchObject({ completed: 3, rejected: 1 });
    // Room again once the queue drained.
    await expect(block(pool, 1)).resolves.toMatchObject({ pid: expect.any(Number) });
  });

  it('refuses at once what would not be done by its deadline, by the mean task time', async () => {
    // Before any task finished the mean is 1 s: with a 3 s deadline, one runs and two may wait.
    const pool = await startPool({ size: 1, maxQueue: 8, taskTimeoutMs: 3_000 });
    const admitted = [block(pool, 400), block(pool, 400), block(pool, 400)];
    const refused = await block(pool, 400).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OverloadedError);
    expect((refused as Error).message).toMatch(/would not drain within 3000 ms \(2 waiting\)/);
    expect((refused as OverloadedError).retryAfterSeconds).toBe(3);
    await expect(Promise.all(admitted)).resolves.toHaveLength(3);
    expect(pool.stats).toMatchObject({ completed: 3, rejected: 1, timedOut: 0 });
  });

  it('reckons with what each kind of task is expected to take until it has seen some', async () => {
    const pool = await startPool({ size: 1, taskTimeoutMs: 1_000, expectedTaskMs: { block: 200 } });
    const admitted = Array.from({ length: 5 }, () => block(pool, 100));
    const refused = await block(pool, 100).catch((err: unknown) => err);
    expect((refused as Error).message).toMatch(/would not drain within 1000 ms \(4 waiting\)/);
    await expect(Promise.all(admitted)).resolves.toHaveLength(5);
    // Now it knows a block takes ~100 ms: more fit before the deadline.
    await expect(Promise.all(Array.from({ length: 6 }, () => block(pool, 100)))).resolves.toHaveLength(6);
  });

  it('fails a task at its deadline, running or queued, and replaces the worker it held', async () => {
    const pool = await startPool({ size: 1, taskTimeoutMs: 2_500 });
    const [before] = pool.stats.workerPids;
    const started = performance.now();
    const [running, queued] = await Promise.all([
      block(pool, 10_000).catch((err: unknown) => err),
      block(pool, 10).catch((err: unknown) => err),
    ]);
    const elapsed = performance.now() - started;
    expect(running).toBeInstanceOf(OverloadedError);
    expect(queued).toBeInstanceOf(OverloadedError);
    expect((running as Error).message).toMatch(/not done within 2500 ms/);
    expect(elapsed).toBeLessThan(5_000); // the 10 s task was not waited for
    expect(pool.stats.timedOut).toBe(2);
    // A fresh worker (loading it takes longer than this pool's deadline) serves the next task.
    const [after] = await waitFor(
      () => (pool.stats.workerPids.length === 1 ? pool.stats.workerPids : undefined),
      10_000,
    );
    expect(after).not.toBe(before);
    expect((await block(pool, 1)).pid).toBe(after);
    expect(logs.some((l) => l.msg === 'worker pool task timed out; replacing its worker')).toBe(true);
  });

  it('fails the task of a worker that crashes and restarts the worker', async () => {
    const pool = await startPool({ size: 1 });
    const [before] = pool.stats.workerPids;
    const crashed = await pool.run('crash', null, z.unknown()).catch((err: unknown) => err);
    expect(crashed).toBeInstanceOf(Error);
    expect(crashed).not.toBeInstanceOf(OverloadedError); // a bug, not load
    expect((crashed as Error).message).toMatch(/worker crashed running crash/);
    const next = await block(pool, 1); // waits in the queue while the worker restarts
    expect(next.pid).not.toBe(before);
    expect(pool.stats.crashes).toBe(1);
    expect(logs.filter((l) => l.msg === 'worker pool worker crashed; restarting it')).toHaveLength(1);
  });

  it('carries validation issues across, and withholds other errors’ messages', async () => {
    const pool = await startPool();
    const invalid = await pool.run('invalid', null, z.unknown()).catch((err: unknown) => err);
    expect(invalid).toBeInstanceOf(TaskFailedError);
    expect((invalid as TaskFailedError).failure).toEqual({
      kind: 'validation',
      issues: [{ path: 'auth.passphrase', message: 'is wrong' }],
    });
    const leaky = await pool.run('leaky', null, z.unknown()).catch((err: unknown) => err);
    expect(leaky).toBeInstanceOf(TaskFailedError);
    expect((leaky as Error).message).not.toContain('BEGIN');
    expect((leaky as TaskFailedError).failure).toEqual({
      kind: 'failed',
      name: 'Error',
      message: 'the task failed',
    });
  });

  it('rejects a result that does not match the caller’s schema', async () => {
    const pool = await startPool();
    await expect(pool.run('whoami', null, z.string())).rejects.toThrow(/whoami returned an unexpected value/);
  });

  it('close() fails what waits or runs, ends every worker, refuses new work, and is idempotent', async () => {
    const pool = await startPool({ size: 1 });
    const [worker] = pool.stats.workerPids;
    const running = block(pool, 2_000).catch((err: unknown) => err);
    const queued = block(pool, 10).catch((err: unknown) => err);
    await waitFor(() => pool.stats.busy === 1, 2_000);
    const started = performance.now();
    await pool.close();
    expect(performance.now() - started).toBeLessThan(1_500); // did not wait for the 2 s task
    expect(worker !== undefined && isAlive(worker)).toBe(false);
    for (const outcome of await Promise.all([running, queued])) {
      expect(outcome).toBeInstanceOf(OverloadedError);
      expect((outcome as Error).message).toMatch(/shutting down/);
    }
    await expect(block(pool, 1)).rejects.toBeInstanceOf(OverloadedError);
    await pool.close();
    expect(logs.filter((l) => l.msg === 'worker pool stopped')).toHaveLength(1);
  });

  it('a worker ends with the process that owns the pool, even one killed with SIGKILL', async () => {
    const owner = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(OWNER)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(createInterface({ input: owner.stdout }), 'line')) as [string];
    const [worker] = z
      .object({ workerPids: z.array(z.number()).length(1) })
      .parse(JSON.parse(line)).workerPids;
    if (worker === undefined) throw new Error('the owner started no worker');
    expect(isAlive(worker)).toBe(true);
    owner.kill('SIGKILL');
    await waitFor(() => !isAlive(worker), 5_000, { what: `worker ${worker} gone after its owner's SIGKILL` });
  });

  it('close() finishes in a process that has nothing else to do (a shutdown awaits it)', async () => {
    const owner = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(OWNER), '--close'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    createInterface({ input: owner.stdout }).on('line', (line) => lines.push(line));
    const [code] = (await withTimeout(once(owner, 'exit'), 20_000, 'the pool owner exiting')) as [number];
    expect(code).toBe(0);
    expect(lines.at(-1)).toBe('closed');
  });

  it('start() rejects when a worker cannot load, instead of running without workers', async () => {
    const pool = new WorkerPool({
      name: 'broken pool',
      entry: new URL('./fixtures/missing-worker.mjs', import.meta.url),
      size: 1,
      maxQueue: 1,
      taskTimeoutMs: 1_000,
      logger: createLogger('error', () => {}),
    });
    pools.push(pool);
    await expect(pool.start()).rejects.toThrow(/missing-worker\.mjs/);
  });
});

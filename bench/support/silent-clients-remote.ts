/** The parent's side of `silent-clients-process.ts`: start the flood, watch it, stop it, read the lifetimes. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { Cleanup } from './cleanup';
import type { SilentClientsOptions } from './silent-clients';

const PROCESS = fileURLToPath(new URL('./silent-clients-process.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const ProgressSchema = z.object({ type: z.literal('progress'), opened: z.number(), open: z.number() });
const ResultSchema = z.object({
  type: z.literal('result'),
  opened: z.number(),
  failedConnects: z.number(),
  lifetimesMs: z.array(z.number()),
  drainMs: z.number(),
  leftOpen: z.number(),
});
export type SilentFloodOutcome = Omit<z.infer<typeof ResultSchema>, 'type'>;

export class RemoteSilentClients {
  private progress = { opened: 0, open: 0 };

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (raw) => {
      const parsed = ProgressSchema.safeParse(raw);
      if (parsed.success) this.progress = parsed.data;
    });
  }

  /** Starts the process (its own open-files limit) and the flood in it. */
  static async start(
    cleanup: Cleanup,
    options: SilentClientsOptions,
    openFiles: number,
  ): Promise<RemoteSilentClients> {
    const child = spawn(
      'prlimit',
      [`--nofile=${openFiles}:${openFiles}`, '--', process.execPath, '--import', 'tsx', PROCESS],
      { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    cleanup.add('silent flood process', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('silent flood process did not start in 20 s')), 20_000);
      child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`silent flood process exited during start-up (${code})`));
      });
    });
    child.send({ type: 'start', ...options });
    return new RemoteSilentClients(child);
  }

  /** Connections opened so far, and open right now (as of the last report, 100 ms at most ago). */
  get opened(): number {
    return this.progress.opened;
  }

  get open(): number {
    return this.progress.open;
  }

  /** Stops reopening; resolves once the gateway closed the rest, or `drainTimeoutMs` passed. */
  stop(drainTimeoutMs: number): Promise<SilentFloodOutcome> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('silent flood process gave no result')),
        drainTimeoutMs + 20_000,
      );
      const onMessage = (raw: unknown) => {
        const parsed = ResultSchema.safeParse(raw);
        if (!parsed.success) return;
        clearTimeout(timer);
        this.child.off('message', onMessage);
        const { type: _, ...outcome } = parsed.data;
        resolve(outcome);
      };
      this.child.on('message', onMessage);
      this.child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`silent flood process exited (${code}) before its result`));
      });
      this.child.send({ type: 'stop', drainTimeoutMs });
    });
  }
}

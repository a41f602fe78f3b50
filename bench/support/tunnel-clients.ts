/**
 * The bench's side of the ssh2 customer process: starts it with a high open-files limit, sends
 * it requests and awaits their answers (each bounded in time).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Cleanup } from './cleanup';
import {
  type ForwardSession,
  type LoginStep,
  LoginStepSchema,
  type OpenResult,
  OpenResultSchema,
  ResponseSchema,
  type SshTarget,
} from './tunnel-clients-protocol';

const WORKER = fileURLToPath(new URL('./tunnel-clients-worker.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

type Pending = { resolve: (value: unknown) => void; reject: (err: Error) => void; timer: NodeJS.Timeout };

export class TunnelClients {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (raw) => {
      const parsed = ResponseSchema.safeParse(raw);
      if (!parsed.success) return;
      const { id, ok, error, result } = parsed.data;
      const waiter = this.pending.get(id);
      if (!waiter) return;
      this.pending.delete(id);
      clearTimeout(waiter.timer);
      if (ok) waiter.resolve(result);
      else waiter.reject(new Error(`ssh2 customers: ${error}`));
    });
    child.once('exit', (code, signal) => {
      for (const [id, waiter] of this.pending) {
        this.pending.delete(id);
        clearTimeout(waiter.timer);
        waiter.reject(new Error(`ssh2 customer process exited (${code ?? signal})`));
      }
    });
  }

  /** Starts the process (RLIMIT_NOFILE raised through `prlimit`: thousands of sockets). */
  static async start(cleanup: Cleanup, openFiles: number): Promise<TunnelClients> {
    const child = spawn(
      'prlimit',
      [`--nofile=${openFiles}:${openFiles}`, '--', process.execPath, '--import', 'tsx', WORKER],
      { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    cleanup.add('ssh2 customer process', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('ssh2 customer process did not start in 20 s')),
        20_000,
      );
      child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`ssh2 customer process exited during start-up (${code})`));
      });
    });
    return new TunnelClients(child);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Opens one reverse forward per session, `concurrency` logins at a time, and keeps them open. */
  async open(
    group: string,
    target: SshTarget,
    sessions: ForwardSession[],
    options: { concurrency: number; timeoutMs: number; deadlineMs: number },
  ): Promise<OpenResult> {
    const result = await this.request(
      {
        type: 'open',
        group,
        target,
        sessions,
        concurrency: options.concurrency,
        timeoutMs: options.timeoutMs,
      },
      options.deadlineMs,
    );
    return OpenResultSchema.parse(result);
  }

  /** Disconnects every client of `group`. */
  async close(group: string, timeoutMs = 15_000): Promise<void> {
    await this.request({ type: 'close', group, timeoutMs }, timeoutMs + 5_000);
  }

  async loginRate(
    target: SshTarget,
    sessions: ForwardSession[],
    options: { ladder: number[]; stepMs: number; timeoutMs: number; kex?: string[] },
  ): Promise<LoginStep[]> {
    const deadline = options.ladder.length * (options.stepMs + options.timeoutMs * 2) + 10_000;
    const result = await this.request({ type: 'login-rate', target, sessions, ...options }, deadline);
    return LoginStepSchema.array().parse(result);
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  private request(message: Record<string, unknown>, deadlineMs: number): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // Gone already (killed on Ctrl-C or SIGTERM): a send would throw from the channel.
      if (!this.child.connected) {
        reject(new Error(`ssh2 customers: ${String(message.type)}: the process is gone`));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`ssh2 customers: ${String(message.type)} gave no answer within ${deadlineMs} ms`));
      }, deadlineMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.send({ ...message, id }, (err) => {
        if (!err) return;
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new Error(`ssh2 customers: ${String(message.type)}: ${err.message}`));
      });
    });
  }
}

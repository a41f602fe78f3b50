/**
 * A bounded pool of worker processes for CPU-heavy tasks, so they never run on the event loop that
 * carries tunnel bytes: at most `size` tasks run at once (one per worker), at most `maxQueue` wait,
 * and a full queue answers at once with `OverloadedError` (the API's 503 with Retry-After) instead
 * of letting waits grow. Each task has a deadline from submission; a task still running at its
 * deadline has its worker killed (a key derivation cannot be interrupted otherwise) and replaced.
 * A worker that crashes fails its task and is restarted with backoff.
 *
 * Processes, not worker threads: a thread's isolate shares the process's V8 platform threads, so
 * its garbage collection (parallel marking of tens of ms) ran at normal priority on the event
 * loop's core whatever priority the thread itself had. A process lowers every thread it has (see
 * worker.ts), its collector's included.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { Backoff, type BackoffSettings } from '../backoff';
import { OverloadedError } from '../errors';
import type { Logger } from '../logger';
import { FromWorkerSchema, type TaskFailure, type ToWorker } from './protocol';

export interface WorkerPoolOptions {
  /** Names the pool in logs and errors. */
  name: string;
  /** The worker's entry: a JavaScript module that calls `serveTasks`. */
  entry: URL;
  /** Worker processes, each running one task at a time. */
  size: number;
  /** Tasks that may wait for a worker; one more is refused with `OverloadedError`. */
  maxQueue: number;
  /** From submission to result; past it the task fails with `OverloadedError`. */
  taskTimeoutMs: number;
  logger: Logger;
  /** Between restarts of a worker that keeps crashing. */
  restart?: BackoffSettings;
  /** How long `start()` waits for the workers to load. */
  startTimeoutMs?: number;
  /**
   * Expected run time of each kind of task until some have finished (then their running mean):
   * what admission and Retry-After reckon with. Kinds not named: 1 s.
   */
  expectedTaskMs?: Record<string, number>;
}

export interface WorkerPoolStats {
  size: number;
  busy: number;
  queued: number;
  completed: number;
  rejected: number;
  timedOut: number;
  crashes: number;
  /** Process ids of the live workers. */
  workerPids: number[];
}

/** A failure the worker reported: `failure` says which kind (validation issues or a named error). */
export class TaskFailedError extends Error {
  override name = 'TaskFailedError';
  constructor(
    readonly kind: string,
    readonly failure: TaskFailure,
  ) {
    super(
      `${kind} task failed: ${failure.kind === 'failed' ? `${failure.name}: ${failure.message}` : 'invalid input'}`,
    );
  }
}

const DEFAULT_RESTART: BackoffSettings = { initialMs: 100, maxMs: 30_000, healthyAfterMs: 60_000 };
const DEFAULT_START_TIMEOUT_MS = 30_000;
/** A key task needs a few MB; a worker that grows past this dies (and is restarted) instead. */
const WORKER_EXEC_ARGV = ['--max-old-space-size=64'];
/** What a worker printed to stderr before it was ready, kept to say why it could not start. */
const STARTUP_STDERR_BYTES = 2_048;
/** The expected time of a task of a kind the pool was told nothing about. */
const DEFAULT_TASK_MS = 1_000;
const MAX_RETRY_AFTER_S = 60;

interface Task {
  id: number;
  kind: string;
  payload: unknown;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  startedAt?: number;
}

interface Slot {
  index: number;
  worker?: ChildProcess;
  pid?: number;
  ready: boolean;
  task?: Task;
  spawnedAt: number;
  backoff: Backoff;
  restartTimer?: NodeJS.Timeout;
  /** Resolves once this worker has exited (after a kill, a crash or close). */
  exited: Promise<void>;
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private nextId = 0;
  /** Running mean of each kind's run time. */
  private readonly meanTaskMs = new Map<string, number>();
  private isClosed = false;
  private readonly counts = { completed: 0, rejected: 0, timedOut: 0, crashes: 0 };
  private readonly log: Logger;

  constructor(private readonly options: WorkerPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new RangeError('pool size must be >= 1');
    if (!Number.isInteger(options.maxQueue) || options.maxQueue < 0)
      throw new RangeError('maxQueue must be >= 0');
    this.log = options.logger.child({ component: options.name });
  }

  /** Spawns every worker and waits until each has loaded; rejects (and closes) if one cannot. */
  async start(): Promise<void> {
    const ready = Array.from({ length: this.options.size }, (_, index) => this.spawn(index));
    const timeoutMs = this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all(ready),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${this.options.name}: workers not ready within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      await this.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    this.log.info('worker pool started', {
      workers: this.options.size,
      maxQueue: this.options.maxQueue,
      taskTimeoutMs: this.options.taskTimeoutMs,
    });
  }

  /**
   * Runs `kind` on a worker and validates its value with `result`. Rejects with `OverloadedError`
   * when the queue is full or the deadline passes, `TaskFailedError` when the task threw.
   */
  run<T>(kind: string, payload: unknown, result: z.ZodType<T>): Promise<T> {
    return this.submit(kind, payload).then((value) => {
      const parsed = result.safeParse(value);
      if (!parsed.success) throw new Error(`${this.options.name}: ${kind} returned an unexpected value`);
      return parsed.data;
    });
  }

  get stats(): WorkerPoolStats {
    return {
      size: this.options.size,
      busy: this.slots.filter((s) => s.task).length,
      queued: this.queue.length,
      ...this.counts,
      workerPids: this.slots.flatMap((s) => (s.ready && s.pid !== undefined ? [s.pid] : [])),
    };
  }

  /** Fails what is queued or running, stops every worker; idempotent. */
  async close(): Promise<void> {
    const wasOpen = !this.isClosed;
    this.isClosed = true;
    const closing = new OverloadedError(this.options.name, 1, 'shutting down');
    for (const task of this.queue.splice(0)) this.settle(task, closing);
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      if (slot.task) this.settle(slot.task, closing);
      slot.task = undefined;
      // Held until it has exited: unreferenced, a process with nothing else to do would end here,
      // before close() resolves and its caller finishes shutting down.
      slot.worker?.ref();
      slot.worker?.kill('SIGKILL');
    }
    await Promise.all(this.slots.map((s) => s.exited));
    if (wasOpen && this.slots.length > 0) this.log.info('worker pool stopped', { ...this.counts });
  }

  private submit(kind: string, payload: unknown): Promise<unknown> {
    if (this.isClosed) return Promise.reject(new OverloadedError(this.options.name, 1, 'shutting down'));
    if (!this.idleSlot()) {
      // Refused now rather than failed at the deadline: a task that cannot be done in time waits
      // for nothing (and a client learns when to come back at once, not after a minute).
      const why =
        this.queue.length >= this.options.maxQueue
          ? `queue full (${this.queue.length} waiting)`
          : this.drainMs() + this.expectedMs(kind) > this.options.taskTimeoutMs
            ? `queue would not drain within ${this.options.taskTimeoutMs} ms (${this.queue.length} waiting)`
            : undefined;
      if (why) {
        this.counts.rejected++;
        return Promise.reject(new OverloadedError(this.options.name, this.retryAfterSeconds(), why));
      }
    }
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const task: Task = {
        id,
        kind,
        payload,
        resolve,
        reject,
        timer: setTimeout(() => this.expire(task), this.options.taskTimeoutMs),
      };
      this.queue.push(task);
      this.dispatch();
    });
  }

  private idleSlot(): Slot | undefined {
    return this.slots.find((s) => s.ready && !s.task && s.worker);
  }

  private dispatch(): void {
    for (let slot = this.idleSlot(); slot && this.queue.length > 0; slot = this.idleSlot()) {
      const task = this.queue.shift();
      if (!task || !slot.worker) return;
      slot.task = task;
      task.startedAt = performance.now();
      const message: ToWorker = { type: 'task', id: task.id, kind: task.kind, payload: task.payload };
      slot.worker.send(message);
    }
  }

  /** The deadline passed: a waiting task leaves the queue; a running one takes its worker down. */
  private expire(task: Task): void {
    this.counts.timedOut++;
    const error = new OverloadedError(
      this.options.name,
      this.retryAfterSeconds(),
      `${task.kind} not done within ${this.options.taskTimeoutMs} ms`,
    );
    const queued = this.queue.indexOf(task);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      this.settle(task, error);
      return;
    }
    const slot = this.slots.find((s) => s.task === task);
    this.settle(task, error);
    if (!slot) return;
    this.log.warn('worker pool task timed out; replacing its worker', {
      kind: task.kind,
      timeoutMs: this.options.taskTimeoutMs,
      pid: slot.pid,
    });
    slot.task = undefined;
    this.replace(slot, 0);
  }

  private settle(task: Task, outcome: Error | { value: unknown }): void {
    clearTimeout(task.timer);
    if (outcome instanceof Error) task.reject(outcome);
    else task.resolve(outcome.value);
  }

  private onMessage(slot: Slot, message: unknown, markReady: () => void): void {
    const parsed = FromWorkerSchema.safeParse(message);
    if (!parsed.success) {
      this.log.error('worker pool worker sent an unreadable message', { pid: slot.pid });
      return;
    }
    const data = parsed.data;
    if (data.type === 'ready') {
      slot.pid = data.pid;
      slot.ready = true;
      this.log.debug('worker pool worker ready', { pid: data.pid });
      markReady();
      this.dispatch();
      return;
    }
    const task = slot.task;
    if (!task || task.id !== data.id) return; // answered after its deadline: already settled
    slot.task = undefined;
    if (task.startedAt !== undefined) {
      const took = performance.now() - task.startedAt;
      this.meanTaskMs.set(task.kind, 0.8 * this.expectedMs(task.kind) + 0.2 * took);
    }
    this.counts.completed++;
    this.settle(task, data.ok ? { value: data.value } : new TaskFailedError(task.kind, data.failure));
    this.dispatch();
  }

  /** Starts the worker of slot `index`; resolves once it is ready, rejects if it dies before. */
  private spawn(index: number): Promise<void> {
    const existing = this.slots[index];
    const slot: Slot = existing ?? {
      index,
      ready: false,
      spawnedAt: 0,
      backoff: new Backoff(this.options.restart ?? DEFAULT_RESTART),
      exited: Promise.resolve(),
    };
    this.slots[index] = slot;
    slot.ready = false;
    slot.spawnedAt = performance.now();
    return new Promise<void>((resolve, reject) => {
      const entry = fileURLToPath(this.options.entry);
      // Not this process's flags (`--import tsx`, heap sizes): the entry loads what it needs. Its
      // stdout is unused; stderr is kept only until it is ready (after, it could quote a task's input).
      const worker = fork(entry, [], {
        execArgv: WORKER_EXEC_ARGV,
        serialization: 'advanced',
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      });
      // A worker must not keep a process alive that has nothing else to do; close() ends them.
      worker.unref();
      worker.channel?.unref();
      slot.worker = worker;
      let startupStderr = '';
      const keepStderr = (chunk: Buffer) => {
        if (!slot.ready)
          startupStderr = (startupStderr + chunk.toString('utf8')).slice(-STARTUP_STDERR_BYTES);
      };
      worker.stderr?.on('data', keepStderr);
      if (worker.stderr instanceof Socket) worker.stderr.unref();
      let failure: unknown;
      worker.on('message', (message) => this.onMessage(slot, message, resolve));
      worker.on('error', (err) => {
        failure = err;
      });
      slot.exited = new Promise<void>((exited) => {
        worker.once('exit', (exitCode, signal) => {
          exited();
          if (slot.worker !== worker) return; // replaced on purpose
          const wasReady = slot.ready;
          slot.worker = undefined;
          slot.ready = false;
          const how = signal ? `signal ${signal}` : `code ${exitCode}`;
          const err =
            failure ??
            new Error(
              wasReady
                ? `worker exited with ${how}`
                : `${entry}: worker exited with ${how} before it was ready: ${startupStderr.trim()}`,
            );
          reject(err instanceof Error ? err : new Error(String(err))); // a start() still waiting
          if (!this.isClosed) this.crashed(slot, err);
        });
      });
    });
  }

  private crashed(slot: Slot, err: unknown): void {
    this.counts.crashes++;
    const task = slot.task;
    slot.task = undefined;
    // Not overload: a crash is a bug (or memory exhaustion), the caller's 500 / internal retry.
    if (task) this.settle(task, new Error(`${this.options.name}: worker crashed running ${task.kind}`));
    slot.backoff.connectionEnded(performance.now() - slot.spawnedAt);
    const restartInMs = slot.backoff.next();
    this.log.error('worker pool worker crashed; restarting it', { err, restartInMs, pid: slot.pid });
    this.replace(slot, restartInMs);
  }

  /** Stops the slot's worker (if any) and starts a new one after `delayMs`. */
  private replace(slot: Slot, delayMs: number): void {
    const old = slot.worker;
    slot.worker = undefined;
    slot.ready = false;
    old?.kill('SIGKILL');
    if (this.isClosed) return;
    clearTimeout(slot.restartTimer);
    slot.restartTimer = setTimeout(() => {
      if (this.isClosed) return;
      this.spawn(slot.index).catch(() => {
        // crashed() has logged it and scheduled the next attempt
      });
    }, delayMs);
    slot.restartTimer.unref();
  }

  /** When the queue will likely have room again: what waits and runs, over the workers. */
  private retryAfterSeconds(): number {
    return Math.min(MAX_RETRY_AFTER_S, Math.max(1, Math.ceil(this.drainMs() / 1000)));
  }

  /** How long what waits and runs will take, by each kind's expected time, over the workers. */
  private drainMs(): number {
    const pending = [...this.queue, ...this.slots.flatMap((s) => (s.task ? [s.task] : []))];
    return pending.reduce((sum, task) => sum + this.expectedMs(task.kind), 0) / this.options.size;
  }

  private expectedMs(kind: string): number {
    return this.meanTaskMs.get(kind) ?? this.options.expectedTaskMs?.[kind] ?? DEFAULT_TASK_MS;
  }
}

/**
 * Everything the bench starts (processes, Unix users, temp dirs, servers) registers how to undo
 * it here, and it is undone in reverse order: at the end of the run, on an error, and on Ctrl-C
 * or SIGTERM. Each step is bounded in time so one stuck step cannot keep the rest from running.
 */

const STEP_TIMEOUT_MS = 20_000;

export class Cleanup {
  private readonly steps: { what: string; run: () => unknown }[] = [];
  private running: Promise<void> | undefined;
  private readonly late = new Set<Promise<void>>();

  /**
   * Registers an undo step; returns a function that runs it now (once) and unregisters it. Once
   * clean-up has begun (Ctrl-C during set-up), a late step runs at once instead.
   */
  add(what: string, run: () => unknown): () => Promise<void> {
    const step = { what, run };
    if (this.running) {
      const done = runStep(step, (line) => process.stderr.write(`${line}\n`));
      this.late.add(done);
      void done.finally(() => this.late.delete(done));
      return async () => {};
    }
    this.steps.push(step);
    return async () => {
      const index = this.steps.indexOf(step);
      if (index < 0) return;
      this.steps.splice(index, 1);
      await runStep(step, (line) => process.stderr.write(`${line}\n`));
    };
  }

  /** Runs every registered step, newest first; safe to call more than once (later calls wait). */
  runAll(log: (line: string) => void): Promise<void> {
    this.running ??= (async () => {
      for (let step = this.steps.pop(); step; step = this.steps.pop()) await runStep(step, log);
    })();
    return this.running;
  }

  /**
   * After an interruption: waits for the undo steps that starts still in flight registered late
   * (they run at once), until none came for a moment or `graceMs` passed.
   */
  async settleLate(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    let quietSince = Date.now();
    while (Date.now() < deadline && Date.now() - quietSince < 2_000) {
      if (this.late.size > 0) {
        await Promise.race([Promise.all(this.late), new Promise((resolve) => setTimeout(resolve, 100))]);
        quietSince = Date.now();
      } else {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
}

async function runStep(
  step: { what: string; run: () => unknown },
  log: (line: string) => void,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(step.run),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no result within ${STEP_TIMEOUT_MS} ms`)),
          STEP_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (err) {
    log(`cleanup: ${step.what} failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    clearTimeout(timer);
  }
}

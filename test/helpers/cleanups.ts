/**
 * Teardown for a test file's shared fixtures: each step is registered as its fixture starts, and
 * all of them run at the end, even when some fail (processes, users and tables must not leak); the
 * first failure is then rethrown.
 */
export class Cleanups {
  private readonly steps: (() => Promise<unknown>)[] = [];

  add(step: () => Promise<unknown>): void {
    this.steps.push(step);
  }

  /** Registers `dispose` for what `starting` resolves to as soon as it does (fixtures started at once). */
  async started<T>(starting: Promise<T>, dispose: (fixture: T) => Promise<unknown>): Promise<T> {
    const fixture = await starting;
    this.add(() => dispose(fixture));
    return fixture;
  }

  async runAll(): Promise<void> {
    const results = await Promise.allSettled(
      this.steps
        .splice(0)
        .reverse()
        .map((step) => step()),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

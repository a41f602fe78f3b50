/**
 * A platform workload as the high-availability acceptance describes it: a new connection every
 * `intervalMs` to a tunnel's address, each one short echo exchange, every outcome recorded. Bounded
 * in count and time: it stops by itself at whichever comes first.
 */
import { echoProbe } from './echo';

export interface Attempt {
  /** Date.now() when the connection was started. */
  at: number;
  /** Date.now() when its exchange ended (or failed). */
  endedAt: number;
  ok: boolean;
}

export interface ConnectionLoop {
  /** Outcomes so far (a connection still open counts once it ended). */
  attempts(): readonly Attempt[];
  failuresSince(at: number): Attempt[];
  /** Stops starting connections and resolves once every started one has ended. */
  stop(): Promise<Attempt[]>;
}

export function startConnectionLoop(
  host: string,
  port: number,
  { intervalMs = 20, probeTimeoutMs = 5_000, maxAttempts = 3_000, maxDurationMs = 60_000 } = {},
): ConnectionLoop {
  const attempts: Attempt[] = [];
  const pending = new Set<Promise<void>>();
  const startedAt = Date.now();
  let started = 0;
  const timer = setInterval(() => {
    if (started >= maxAttempts || Date.now() - startedAt > maxDurationMs) {
      clearInterval(timer);
      return;
    }
    started++;
    const at = Date.now();
    const probe = echoProbe(host, port, probeTimeoutMs).then((ok) => {
      attempts.push({ at, endedAt: Date.now(), ok });
      pending.delete(probe);
    });
    pending.add(probe);
  }, intervalMs);
  return {
    attempts: () => attempts,
    failuresSince: (at) => attempts.filter((a) => !a.ok && a.at >= at),
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      return [...attempts].sort((a, b) => a.at - b.at);
    },
  };
}

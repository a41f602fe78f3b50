/**
 * `GET /readyz`: whether this instance can serve, dependency by dependency. 200 with every check
 * passing, else 503 naming the failing ones with `Retry-After`. Results are kept for a moment, so
 * anonymous callers cannot turn readiness probes into load on the table.
 */
import type { Context } from 'hono';

/** One dependency's check: resolves when it serves, throws saying why when it does not. */
export interface ReadinessCheck {
  name: string;
  run(): Promise<void>;
}

type CheckResult = { ok: true; ms: number } | { ok: false; ms: number; error: string };

/** How long one probe's answer is reused; a check never takes longer than its timeout. */
const CACHE_MS = 1_000;
const CHECK_TIMEOUT_MS = 3_000;
const RETRY_AFTER_S = 5;

export function readinessRoute(checks: ReadinessCheck[], now: () => number) {
  let cached: { at: number; results: Promise<Record<string, CheckResult>> } | undefined;
  const runAll = async (): Promise<Record<string, CheckResult>> => {
    const results = await Promise.all(
      checks.map(async (check) => [check.name, await runOne(check)] as const),
    );
    return Object.fromEntries(results);
  };
  return async (c: Context) => {
    if (!cached || now() - cached.at > CACHE_MS) cached = { at: now(), results: runAll() };
    const results = await cached.results;
    const ok = Object.values(results).every((r) => r.ok);
    if (!ok) c.header('Retry-After', String(RETRY_AFTER_S));
    c.header('Cache-Control', 'no-store');
    return c.json({ ok, checks: results }, ok ? 200 : 503);
  };
}

async function runOne(check: ReadinessCheck): Promise<CheckResult> {
  const started = performance.now();
  const ms = () => Math.round((performance.now() - started) * 10) / 10;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check.run(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
          CHECK_TIMEOUT_MS,
        );
      }),
    ]);
    return { ok: true, ms: ms() };
  } catch (err) {
    return { ok: false, ms: ms(), error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

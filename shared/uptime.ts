/**
 * `status.uptime`: the fraction of the last 24 h, 7 d and 30 d a tunnel was up, counting only the
 * time it was expected up (pending and disabled time left out), from its transitions.
 *
 * Reading the events for every status read would cost a query per tunnel (a list of 100 tunnels:
 * 100 queries). Instead the STATUS item carries a small ledger that the status machine extends
 * with the same transitions it records as events, in the same write: the non-up spans of the last
 * 30 days (time in between is up). The API already reads that item, so uptime costs no read, and
 * the ledger changes only on a transition, so a steady tunnel writes nothing.
 *
 * Exact while a tunnel has at most `MAX_SPANS` non-up spans in 30 days. Past that (a tunnel
 * flapping all month), two neighbouring spans are merged into one that keeps their down and
 * excluded totals exactly; only where inside it they fell is then approximated (spread evenly)
 * when a window's start cuts through it, and the pair merged is the one that can misplace least.
 */
import { z } from 'zod';
import type { TunnelEvent, TunnelStateName } from './schemas';

const HOUR_MS = 3_600_000;

/** The windows of `status.uptime`, by name, and how far back each reaches. */
export const UPTIME_WINDOWS = {
  '24h': 24 * HOUR_MS,
  '7d': 7 * 24 * HOUR_MS,
  '30d': 30 * 24 * HOUR_MS,
} as const;
export type UptimeWindow = keyof typeof UPTIME_WINDOWS;
const LONGEST_WINDOW_MS = UPTIME_WINDOWS['30d'];

/** Non-up spans a ledger keeps; a STATUS item stays well under 8 KiB with them. */
export const MAX_SPANS = 100;

/** `[start, end, downMs, excludedMs]`, epoch ms; the rest of `end - start` was up. */
const SpanSchema = z.tuple([z.number(), z.number(), z.number().min(0), z.number().min(0)]);
type Span = z.infer<typeof SpanSchema>;

export const UptimeLedgerSchema = z.object({
  /** Epoch ms before which nothing is known (the tunnel was new, or older than its ledger): not counted. */
  from: z.number(),
  /** Closed spans that were not plainly up, oldest first, each within the last 30 days of its write. */
  spans: z.array(SpanSchema),
});
export type UptimeLedger = z.infer<typeof UptimeLedgerSchema>;

/** Each window's fraction of counted time that was up; null when none of it counted (pending, disabled). */
export type Uptime = Record<UptimeWindow, number | null>;

/** A ledger that knows nothing before `fromIso`. */
export function newLedger(fromIso: string): UptimeLedger {
  return { from: Date.parse(fromIso), spans: [] };
}

/**
 * The ledger after `transitions` (oldest first, as the status machine emits them), the first of
 * which leaves the state `from` that began at `fromSince`.
 */
export function recordTransitions(
  ledger: UptimeLedger,
  from: { state: TunnelStateName; since: string },
  transitions: readonly TunnelEvent[],
  now: Date,
): UptimeLedger {
  const next: UptimeLedger = { from: ledger.from, spans: ledger.spans.map((s): Span => [...s]) };
  let state = from.state;
  let since = Date.parse(from.since);
  for (const t of transitions) {
    const at = Math.max(since, Date.parse(t.at));
    addSpan(next, state, since, at);
    state = t.to;
    since = at;
  }
  // Spans that ended before the longest window of any later read begins can no longer matter.
  const cutoff = now.getTime() - LONGEST_WINDOW_MS;
  next.spans = next.spans.filter((s) => s[1] > cutoff);
  while (next.spans.length > MAX_SPANS) mergeCheapestPair(next.spans, now.getTime());
  return next;
}

function addSpan(ledger: UptimeLedger, state: TunnelStateName, start: number, end: number): void {
  if (state === 'up' || end <= start) return;
  const length = end - start;
  const isDown = state === 'down';
  // Time not counted that begins where the ledger does only moves its start (a new tunnel's pending).
  if (!isDown && ledger.spans.length === 0 && start <= ledger.from) {
    ledger.from = Math.max(ledger.from, end);
    return;
  }
  ledger.spans.push([start, end, isDown ? length : 0, isDown ? 0 : length]);
}

/**
 * Merges the two neighbours whose merge can misplace the least: what a merged span spreads
 * evenly is its down and excluded time, and only a window whose start still has to cross the span
 * can see it misplaced, by that much out of the window's length. A span older than a day never
 * meets the 24 h window's start again, one older than 7 days only the 30 d window's.
 */
function mergeCheapestPair(spans: Span[], nowMs: number): void {
  const cost = (i: number): number => {
    const [a, b] = [spans[i] as Span, spans[i + 1] as Span];
    const age = nowMs - b[1];
    const window =
      age >= UPTIME_WINDOWS['7d']
        ? UPTIME_WINDOWS['30d']
        : age >= UPTIME_WINDOWS['24h']
          ? UPTIME_WINDOWS['7d']
          : UPTIME_WINDOWS['24h'];
    return (a[2] + a[3] + b[2] + b[3]) / window;
  };
  let best = 0;
  for (let i = 1; i + 1 < spans.length; i++) if (cost(i) < cost(best)) best = i;
  const [a, b] = [spans[best] as Span, spans[best + 1] as Span];
  spans.splice(best, 2, [a[0], b[1], a[2] + b[2], a[3] + b[3]]);
}

/**
 * Uptime at `now` from the ledger (covering up to `current.since`) and the current state since
 * then. Fractions are rounded to 6 decimals (well inside a second of a 24 h window).
 */
export function uptimeOf(
  ledger: UptimeLedger,
  current: { state: TunnelStateName; since: string },
  now: Date,
): Uptime {
  const nowMs = now.getTime();
  const currentSince = Date.parse(current.since);
  const figure = (windowMs: number): number | null => {
    const start = Math.max(nowMs - windowMs, ledger.from);
    if (start >= nowMs) return null;
    let down = 0;
    let excluded = 0;
    for (const [s, e, d, x] of ledger.spans) {
      const overlap = Math.min(e, nowMs) - Math.max(s, start);
      if (overlap <= 0) continue;
      const share = overlap / (e - s);
      down += d * share;
      excluded += x * share;
    }
    const open = nowMs - Math.max(currentSince, start);
    if (open > 0 && current.state === 'down') down += open;
    else if (open > 0 && current.state !== 'up') excluded += open;
    const counted = nowMs - start - excluded;
    // Less than half a millisecond is rounding in the spans' shares (times are whole ms): a window
    // that was all excluded time has no figure, not 100 %.
    if (counted < 0.5) return null;
    const fraction = Math.min(1, Math.max(0, (counted - down) / counted));
    return Math.round(fraction * 1e6) / 1e6;
  };
  return {
    '24h': figure(UPTIME_WINDOWS['24h']),
    '7d': figure(UPTIME_WINDOWS['7d']),
    '30d': figure(UPTIME_WINDOWS['30d']),
  };
}

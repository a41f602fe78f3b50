/**
 * Log lines for dropped connections, rate-limited so a flood cannot flood the log (sshd's
 * log_ratelimit does the same for MaxStartups): the first few drops of each reason in a window are
 * logged one by one, the rest are counted and summed up in one line per reason when the window
 * ends, with the sources that were dropped most.
 */
import type { Logger } from '../../shared/logger';

export interface DropLogSettings {
  windowMs: number;
  /** Lines per reason per window; the rest go into the summary. */
  linesPerWindow: number;
}

export const DEFAULT_DROP_LOG: DropLogSettings = { windowMs: 10_000, linesPerWindow: 20 };

/** Distinct sources counted per reason and window; beyond, they are only in the total. */
const MAX_SOURCES_COUNTED = 1_000;
const TOP_SOURCES = 5;

interface Window {
  startedAt: number;
  logged: number;
  suppressed: number;
  bySource: Map<string, number>;
}

export class DropLog {
  private readonly windows = new Map<string, Window>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly settings: DropLogSettings = DEFAULT_DROP_LOG,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs (or counts) one dropped connection. */
  drop(source: string, reason: string, fields: Record<string, unknown> = {}): void {
    const now = this.now();
    let window = this.windows.get(reason);
    if (window && now - window.startedAt >= this.settings.windowMs) {
      this.summarize(reason, window);
      window = undefined;
    }
    if (!window) {
      window = { startedAt: now, logged: 0, suppressed: 0, bySource: new Map() };
      this.windows.set(reason, window);
    }
    if (window.logged < this.settings.linesPerWindow) {
      window.logged++;
      this.logger.info('ssh connection dropped', { source, reason, ...fields });
      return;
    }
    window.suppressed++;
    const seen = window.bySource.get(source);
    if (seen !== undefined || window.bySource.size < MAX_SOURCES_COUNTED) {
      window.bySource.set(source, (seen ?? 0) + 1);
    }
    this.armTimer();
  }

  /** Writes the summaries of windows that have ended (all of them with `all`). */
  flush(all = false): void {
    const now = this.now();
    for (const [reason, window] of this.windows) {
      if (all || now - window.startedAt >= this.settings.windowMs) this.summarize(reason, window);
    }
    if (!all && [...this.windows.values()].some((w) => w.suppressed > 0)) this.armTimer();
  }

  /** Writes what is still counted and stops the timer. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flush(true);
  }

  /** The summary is written when its window ends even if no further drop comes. */
  private armTimer(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.settings.windowMs).unref();
  }

  private summarize(reason: string, window: Window): void {
    this.windows.delete(reason);
    if (window.suppressed === 0) return;
    const topSources = [...window.bySource]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP_SOURCES)
      .map(([source, count]) => ({ source, count }));
    this.logger.warn('ssh connection drops not logged one by one', {
      reason,
      count: window.suppressed,
      distinctSources: window.bySource.size,
      topSources,
      windowMs: this.settings.windowMs,
    });
  }
}

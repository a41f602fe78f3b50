/**
 * Follows the table's log of tunnel changes (shared/store/tunnel-changes.ts) for the gateway: each
 * poll names the tunnels changed since the last one, so the gateway rereads only those of the
 * tunnels it carries. A poll reads a little behind and overlaps the last (writes carry their
 * writer's clock and land a moment after it), and says `everything` when it cannot vouch for what
 * happened: at first, and after an absence longer than the log keeps changes.
 */
import { CHANGE_RETENTION_MS, type TunnelChange } from '../shared/store/tunnel-changes';

/** A change is read until this long after the time it carries: clock skew and write latency. */
export const CHANGE_OVERLAP_MS = 30_000;

export type ChangesSince =
  | { everything: true }
  | {
      everything: false;
      /** The tunnels changed, each once. */
      tunnelIds: string[];
      /** The changes, oldest first; those the last poll read are read again (the polls overlap). */
      changes: TunnelChange[];
      /** Every change written before this time (epoch ms) has been read. */
      completeUntil: number;
    };

export class TunnelChangeFollower {
  /** Up to when (epoch ms) every change has been read. */
  private readUntil: number | undefined;

  constructor(
    private readonly listTunnelChanges: (sinceMs: number, untilMs: number) => Promise<TunnelChange[]>,
    private readonly now: () => number = Date.now,
  ) {}

  /** What changed since the last poll; throws when the log cannot be read (the next poll catches up). */
  async poll(): Promise<ChangesSince> {
    const now = this.now();
    const from = this.readUntil;
    if (from === undefined || now - from > CHANGE_RETENTION_MS - CHANGE_OVERLAP_MS) {
      // Nothing read yet, or too long ago: from now on the log is followed; until now, it cannot tell.
      this.readUntil = now - CHANGE_OVERLAP_MS;
      return { everything: true };
    }
    const changes = await this.listTunnelChanges(from, now + 1);
    this.readUntil = now - CHANGE_OVERLAP_MS;
    const tunnelIds = [...new Set(changes.map((change) => change.tunnelId))];
    return { everything: false, tunnelIds, changes, completeUntil: now - CHANGE_OVERLAP_MS };
  }
}

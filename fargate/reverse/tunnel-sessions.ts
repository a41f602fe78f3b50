/**
 * Logged-in sessions of each tunnel on this gateway, for MAX_SESSIONS_PER_TUNNEL: one key must not
 * hold unbounded connections. A session taken over by a newer login of the same tunnel stops
 * counting at once (it only drains), so a customer's autossh reconnecting again and again never
 * locks itself out.
 */

export class TunnelSessions {
  private readonly byTunnel = new Map<string, Set<string>>();

  constructor(private readonly maxPerTunnel: number) {}

  get limit(): number {
    return this.maxPerTunnel;
  }

  /** Counts the login `connId` of `tunnelId`, or says how many already hold the tunnel. */
  tryAdd(tunnelId: string, connId: string): { ok: true } | { ok: false; count: number } {
    let sessions = this.byTunnel.get(tunnelId);
    if (sessions?.has(connId)) return { ok: true };
    if (sessions && sessions.size >= this.maxPerTunnel) return { ok: false, count: sessions.size };
    if (!sessions) {
      sessions = new Set();
      this.byTunnel.set(tunnelId, sessions);
    }
    sessions.add(connId);
    return { ok: true };
  }

  /** The session closed or was taken over: it no longer counts. Safe to call more than once. */
  remove(tunnelId: string, connId: string): void {
    const sessions = this.byTunnel.get(tunnelId);
    if (!sessions?.delete(connId)) return;
    if (sessions.size === 0) this.byTunnel.delete(tunnelId);
  }

  count(tunnelId: string): number {
    return this.byTunnel.get(tunnelId)?.size ?? 0;
  }
}

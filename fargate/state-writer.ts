/**
 * Writes tunnel state transitions in order per tunnel. Never blocks the SSH protocol path.
 *
 * While the table is unavailable, a transition waits and is retried with capped, jittered backoff
 * until the table answers: an outage delays it, never loses it. Only the newest state of a tunnel
 * waits (memory stays at one pending item per tunnel): a newer state replaces an unwritten one, and
 * what the replaced one said that history needs travels with it (a down becomes the `lastDown` of
 * the up after it; a takeover chain keeps pointing at the last connection written).
 */
import { randomInt } from 'node:crypto';
import { PRIMARY_CONNECTOR_ID } from '../shared/connectors';
import { StorageUnavailableError } from '../shared/errors';
import { lastDownOf, type TunnelStateItem } from '../shared/gateway-items';
import type { Logger } from '../shared/logger';
import type { GatewayStore } from '../shared/store/gateway-store';

/** Other failures (a bug, an item the table refuses) are retried a few times, then given up. */
const MAX_ATTEMPTS_ON_ERROR = 6;
const MAX_BACKOFF_MS = 5_000;

export class StateWriter {
  /** The newest state of each tunnel not yet handed to a write. */
  private readonly waiting = new Map<string, TunnelStateItem>();
  /** Tunnels whose writing loop runs (at most one per tunnel, so writes stay in order). */
  private readonly loops = new Map<string, Promise<void>>();
  /** The `up` last written of each slot still up (`rewriteUps`). */
  private readonly lastWritten = new Map<string, TunnelStateItem>();

  constructor(
    private readonly store: GatewayStore,
    private readonly logger: Logger,
  ) {}

  /** Queues `item` as the state of the tunnel's connector (its own key's, `primary`, by default). */
  write(tunnelId: string, item: TunnelStateItem, connectorId = PRIMARY_CONNECTOR_ID): void {
    const slot = slotKey(tunnelId, connectorId);
    const older = this.waiting.get(slot);
    this.waiting.set(slot, older ? replacing(older, item) : item);
    if (this.loops.has(slot)) return;
    const loop = this.drain(slot).finally(() => this.loops.delete(slot));
    this.loops.set(slot, loop);
  }

  /**
   * Queues again every `up` this writer last wrote. A worker the sweeper may have taken for gone
   * (its heartbeats could not be written for a while) says so: the writes reach the sweeper, which
   * records its tunnels up again; nothing else would, as nothing changed on the worker's side.
   */
  rewriteUps(): number {
    let queued = 0;
    for (const [slot, item] of this.lastWritten) {
      if (this.waiting.has(slot) || this.loops.has(slot)) continue;
      const { tunnelId, connectorId } = slotOf(slot);
      this.write(tunnelId, item, connectorId);
      queued++;
    }
    return queued;
  }

  /** Tunnel connectors with a state not yet written. */
  get backlog(): number {
    return new Set([...this.waiting.keys(), ...this.loops.keys()]).size;
  }

  /** Resolves once every queued write has finished, or at `deadline` (epoch ms) if given. */
  async flush(deadline?: number): Promise<void> {
    while (this.loops.size > 0) {
      const all = Promise.all(this.loops.values());
      if (deadline === undefined) {
        await all;
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
    }
  }

  private async drain(slot: string): Promise<void> {
    for (let item = this.take(slot); item; item = this.take(slot)) {
      await this.writeUntilDone(slot, item);
    }
  }

  private take(slot: string): TunnelStateItem | undefined {
    const item = this.waiting.get(slot);
    this.waiting.delete(slot);
    return item;
  }

  private async writeUntilDone(slot: string, first: TunnelStateItem): Promise<void> {
    const { tunnelId, connectorId } = slotOf(slot);
    const write = (item: TunnelStateItem) =>
      connectorId === PRIMARY_CONNECTOR_ID
        ? this.store.writeState(tunnelId, item)
        : this.store.writeConnectorState(tunnelId, connectorId, item);
    let item = first;
    let errors = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const written = await write(item);
        // Only the newest `up` of each slot is worth repeating; a down (or a lost race) ends it.
        if (written && item.state === 'up') this.lastWritten.set(slot, item);
        else this.lastWritten.delete(slot);
        this.logger.info(written ? 'tunnel state written' : 'tunnel state superseded by a newer connection', {
          tunnelId,
          connectorId: connectorId === PRIMARY_CONNECTOR_ID ? undefined : connectorId,
          state: item.state,
          connId: item.connId,
          code: item.error?.code,
          attempts: attempt,
        });
        return;
      } catch (err) {
        const isOutage = err instanceof StorageUnavailableError;
        if (!isOutage && ++errors >= MAX_ATTEMPTS_ON_ERROR) {
          this.logger.error('tunnel state write failed; giving up', { tunnelId, state: item.state, err });
          return;
        }
        if (attempt === 1 || attempt % 10 === 0) {
          this.logger.warn('tunnel state write failed; retrying', {
            tunnelId,
            state: item.state,
            attempt,
            err,
          });
        }
        const cap = Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(attempt, 10));
        await new Promise((resolve) => setTimeout(resolve, randomInt(Math.floor(cap / 2), cap + 1)));
        // A newer state came meanwhile: write that instead, carrying what this one said.
        const newer = this.take(slot);
        if (newer) item = replacing(item, newer);
      }
    }
  }
}

/** One queue per connector of a tunnel: each connector's states stay in order. */
const slotKey = (tunnelId: string, connectorId: string): string => `${tunnelId}/${connectorId}`;

function slotOf(slot: string): { tunnelId: string; connectorId: string } {
  const at = slot.indexOf('/');
  return { tunnelId: slot.slice(0, at), connectorId: slot.slice(at + 1) };
}

/** `newer` in place of `older`, which was never written. */
function replacing(older: TunnelStateItem, newer: TunnelStateItem): TunnelStateItem {
  const merged: TunnelStateItem = { ...newer };
  // An up after an unwritten down: the down would have been the item's `lastDown`; keep it so.
  if (newer.state === 'up') {
    const lastDown = older.state === 'down' ? lastDownOf(older) : older.lastDown;
    if (lastDown && !newer.lastDown) merged.lastDown = lastDown;
  }
  // A takeover of a connection whose up was never written continues what that one continued.
  if (newer.continues !== undefined && newer.continues === older.connId) {
    if (older.continues === undefined) delete merged.continues;
    else merged.continues = older.continues;
  }
  return merged;
}

/**
 * Writes tunnel state transitions in order per tunnel, retrying with jittered backoff so a
 * DynamoDB hiccup delays a transition instead of losing it. Never blocks the SSH protocol path.
 */
import { randomInt } from 'node:crypto';
import type { TunnelStateItem } from '../shared/gateway-items';
import type { Logger } from '../shared/logger';
import type { GatewayStore } from '../shared/store/gateway-store';

const MAX_ATTEMPTS = 6;

export class StateWriter {
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    private readonly store: GatewayStore,
    private readonly logger: Logger,
  ) {}

  write(tunnelId: string, item: TunnelStateItem): void {
    const previous = this.chains.get(tunnelId) ?? Promise.resolve();
    const next = previous.then(() => this.writeWithRetry(tunnelId, item));
    this.chains.set(tunnelId, next);
    void next.finally(() => {
      if (this.chains.get(tunnelId) === next) this.chains.delete(tunnelId);
    });
  }

  /** Resolves once every queued write has finished (for shutdown and tests). */
  async flush(): Promise<void> {
    while (this.chains.size > 0) await Promise.all(this.chains.values());
  }

  private async writeWithRetry(tunnelId: string, item: TunnelStateItem): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const written = await this.store.writeState(tunnelId, item);
        this.logger.info(written ? 'tunnel state written' : 'tunnel state superseded by a newer connection', {
          tunnelId,
          state: item.state,
          connId: item.connId,
          code: item.error?.code,
        });
        return;
      } catch (err) {
        if (attempt >= MAX_ATTEMPTS) {
          this.logger.error('tunnel state write failed; giving up', { tunnelId, state: item.state, err });
          return;
        }
        const cap = Math.min(5_000, 100 * 2 ** attempt);
        await new Promise((resolve) => setTimeout(resolve, randomInt(Math.floor(cap / 2), cap + 1)));
      }
    }
  }
}

/**
 * The standard-forward pool of one worker: finds enabled standard tunnels, holds a lease on its
 * fair share (a lease is valid while its owner's heartbeat is fresh, so leases cost no writes in
 * steady state), runs a `StandardTunnelRunner` for each, and gives leases up on shutdown so other
 * workers take over at once.
 */
import type { WorkerHeartbeat } from '../../shared/gateway-items';
import type { Logger } from '../../shared/logger';
import type { GatewayStore } from '../../shared/store/gateway-store';
import type { TunnelRecord } from '../../shared/tunnel';
import { type StandardRunnerDeps, StandardTunnelRunner } from './standard-runner';

export interface StandardPoolDeps {
  workerId: string;
  store: GatewayStore;
  logger: Logger;
  runner: Omit<StandardRunnerDeps, 'workerId' | 'logger' | 'store'>;
  /** How often the pool looks for new, changed, orphaned or lost tunnels. */
  pollIntervalMs: number;
  /** A worker whose heartbeat is older than this has lost its leases. */
  leaseTtlMs: number;
  /** When this worker's own last successful heartbeat was (self-fencing). */
  lastOwnBeat: () => number;
  now: () => Date;
}

export class StandardPool {
  private readonly runners = new Map<string, StandardTunnelRunner>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> = Promise.resolve();
  private pollAgain = false;
  private stopped = false;

  constructor(private readonly deps: StandardPoolDeps) {}

  get size(): number {
    return this.runners.size;
  }

  start(): void {
    this.requestPoll();
    this.timer = setInterval(() => this.requestPoll(), this.deps.pollIntervalMs);
    this.timer.unref();
  }

  /** Looks again soon (a tunnel was created or changed through the co-located API). */
  requestPoll(): void {
    if (this.stopped) return;
    if (this.pollAgain) return;
    this.pollAgain = true;
    this.polling = this.polling.then(async () => {
      this.pollAgain = false;
      if (this.stopped) return;
      try {
        await this.poll();
      } catch (err) {
        this.deps.logger.warn('standard pool poll failed', { err });
      }
    });
  }

  /** Stops every runner and releases this worker's leases. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.polling;
    const ids = [...this.runners.keys()];
    await Promise.all(ids.map((id) => this.stopRunner(id, true)));
  }

  private async poll(): Promise<void> {
    const { store, workerId, leaseTtlMs, logger } = this.deps;
    const nowMs = this.deps.now().getTime();
    // Cut off from the table (our heartbeats fail): others will take our tunnels, so let go first.
    if (nowMs - this.deps.lastOwnBeat() > leaseTtlMs) {
      if (this.runners.size > 0) logger.warn('own heartbeat is stale; giving up standard tunnels', {});
      await Promise.all([...this.runners.keys()].map((id) => this.stopRunner(id, false)));
      return;
    }
    const [tunnels, workers] = await Promise.all([store.listStandardTunnels(), store.listWorkers()]);
    const wanted = new Map(tunnels.filter((t) => t.enabled).map((t) => [t.id, t]));
    const leases = await store.getLeases([...wanted.keys(), ...this.runners.keys()]);
    const live = new Set(workers.filter((w) => isFresh(w, nowMs, leaseTtlMs)).map((w) => w.workerId));
    live.add(workerId);

    // Stop what we should no longer serve: deleted, disabled, or taken by another worker.
    for (const id of [...this.runners.keys()]) {
      const tunnel = wanted.get(id);
      const lease = leases.get(id);
      if (!tunnel) await this.stopRunner(id, true);
      else if (lease?.owner !== workerId) await this.stopRunner(id, false);
      else this.runners.get(id)?.update(tunnel);
    }

    // Hand over what exceeds our fair share (a worker joined), then claim up to it.
    const share = Math.ceil(wanted.size / live.size);
    for (const id of [...this.runners.keys()].slice(share)) {
      logger.info('standard tunnel handed over to rebalance', { tunnelId: id, share, workers: live.size });
      await this.stopRunner(id, true);
    }
    for (const tunnel of wanted.values()) {
      if (this.runners.size >= share) break;
      if (this.runners.has(tunnel.id)) continue;
      const lease = leases.get(tunnel.id);
      if (lease && live.has(lease.owner) && lease.owner !== workerId) continue;
      const stale = lease && lease.owner !== workerId ? lease.owner : undefined;
      const at = this.deps.now().toISOString();
      const claimed = lease?.owner === workerId || (await store.claimLease(tunnel.id, workerId, stale, at));
      if (claimed) await this.startRunner(tunnel, stale);
    }

    // A lease we hold without serving it (our runners stopped while we were cut off from the table,
    // or a claim's or release's answer was lost) keeps every other worker away while we beat: let go.
    for (const [id, lease] of leases) {
      if (lease.owner !== workerId || this.runners.has(id)) continue;
      await store.releaseLease(id, workerId);
      logger.info('standard tunnel lease released: held without serving it', { tunnelId: id });
    }
  }

  private async startRunner(tunnel: TunnelRecord, takenFrom: string | undefined): Promise<void> {
    const runner = new StandardTunnelRunner(tunnel, {
      ...this.deps.runner,
      workerId: this.deps.workerId,
      logger: this.deps.logger,
      store: this.deps.store,
    });
    try {
      await runner.start();
    } catch (err) {
      this.deps.logger.error('standard tunnel not started: its port is unavailable on this worker', {
        tunnelId: tunnel.id,
        port: tunnel.port,
        code: (err as NodeJS.ErrnoException).code,
      });
      await this.deps.store.releaseLease(tunnel.id, this.deps.workerId);
      return;
    }
    this.runners.set(tunnel.id, runner);
    this.deps.logger.info('standard tunnel claimed', { tunnelId: tunnel.id, takenFrom });
  }

  private async stopRunner(id: string, release: boolean): Promise<void> {
    const runner = this.runners.get(id);
    if (!runner) return;
    this.runners.delete(id);
    await runner.stop();
    if (release) await this.deps.store.releaseLease(id, this.deps.workerId).catch(() => {});
    this.deps.logger.info('standard tunnel released', { tunnelId: id, leaseReleased: release });
  }
}

function isFresh(worker: WorkerHeartbeat, nowMs: number, ttlMs: number): boolean {
  return nowMs - Date.parse(worker.lastBeatAt) <= ttlMs;
}

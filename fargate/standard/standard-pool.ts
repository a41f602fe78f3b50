/**
 * The standard-forward pool of one worker: finds enabled standard tunnels, holds a lease on its
 * fair share (a lease is valid while its owner is alive by its heartbeat, so leases cost no writes
 * in steady state), runs a `StandardTunnelRunner` for each, and hands them over on shutdown so
 * other workers take over at once.
 *
 * Static stability: when the table cannot be read, polls fail and every runner goes on serving on
 * what it holds. A worker cut off alone may then serve a tunnel another worker took over meanwhile
 * (two sessions to the bastion, harmless); its first poll once the table answers lets go.
 */
import type { ReconnectOutcome } from '../../shared/control';
import { type LivenessSettings, workerLiveness } from '../../shared/liveness';
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
  /** A lease lasts while its owner is alive by this rule (liveness.ts). */
  liveness: LivenessSettings;
  /** Since when this process has seen the table without a gap (a lease is not lost to an outage). */
  observingSince: () => number | undefined;
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

  /** Whether a standard tunnel this worker serves listens on `port`. */
  listensOn(port: number): boolean {
    for (const runner of this.runners.values()) if (runner.port === port) return true;
    return false;
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

  /** Drops the backoff of a tunnel this worker serves; undefined when it serves no such tunnel. */
  reconnectNow(tunnelId: string): ReconnectOutcome | undefined {
    return this.runners.get(tunnelId)?.reconnectNow();
  }

  /** Hands every tunnel over (its state says so) and releases this worker's leases. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.polling;
    const ids = [...this.runners.keys()];
    await Promise.all(ids.map((id) => this.stopRunner(id, true, true)));
  }

  private async poll(): Promise<void> {
    const { store, workerId, logger } = this.deps;
    const [{ tunnels, unreadable }, workers] = await Promise.all([
      store.listStandardTunnels(),
      store.listWorkers(),
    ]);
    for (const item of unreadable) {
      logger.error('stored tunnel unreadable; left as it is', { tunnelId: item.id, ...item });
    }
    // Unreadable is not deleted: a runner serving one goes on as it was.
    const unknown = new Set(unreadable.map((item) => item.id));
    const wanted = new Map(tunnels.filter((t) => t.enabled).map((t) => [t.id, t]));
    const leases = await store.getLeases([...wanted.keys(), ...this.runners.keys()]);
    const view = { now: this.deps.now(), observingSince: this.deps.observingSince() };
    const live = new Set(
      workers.filter((w) => workerLiveness(w, view, this.deps.liveness).isAlive).map((w) => w.workerId),
    );
    live.add(workerId);

    // Stop what we should no longer serve: deleted, disabled, or taken by another worker.
    for (const id of [...this.runners.keys()]) {
      if (unknown.has(id)) continue;
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

  private async stopRunner(id: string, release: boolean, handOver = false): Promise<void> {
    const runner = this.runners.get(id);
    if (!runner) return;
    this.runners.delete(id);
    await runner.stop(handOver);
    if (release) await this.deps.store.releaseLease(id, this.deps.workerId).catch(() => {});
    this.deps.logger.info('standard tunnel released', { tunnelId: id, leaseReleased: release });
  }
}

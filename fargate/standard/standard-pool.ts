/**
 * The standard-forward pool of one worker: finds enabled standard tunnels, holds a lease on its
 * fair share (a lease is valid while its owner is alive by its heartbeat, so leases cost no writes
 * in steady state), runs a `StandardTunnelRunner` for each, and hands them over on shutdown so
 * other workers take over at once.
 *
 * Handovers (shutdown, rebalance) make before they break: the owner offers the lease
 * (`handingOver`) and serves on; another worker claims it whatever its share, listens on the
 * shared port (holding what arrives there until its session is up) and continues the connection;
 * then the owner stops accepting and lets its open connections finish.
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
  /** After a tunnel was taken over from this worker: how long its open connections may finish. */
  handOverDrainMs: number;
  /** Asks the other live gateways to poll now (leases are on offer); resolves with how many will. */
  nudgePeers?: () => Promise<number>;
}

/** How often a stopping worker looks whether the tunnels it offered are up elsewhere. */
const HANDOVER_CHECK_MS = 100;
/**
 * Past its drain deadline, how much longer a stopping worker serves a tunnel another worker has
 * claimed but not brought up yet (a busy machine, many tunnels at once): the stop stays within 10 s.
 */
const CLAIMED_HANDOVER_EXTRA_MS = 3_000;

export class StandardPool {
  private readonly runners = new Map<string, StandardTunnelRunner>();
  /** Runners another worker took over, finishing their open connections. */
  private readonly retiring = new Set<Promise<void>>();
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

  /**
   * Hands every tunnel over: those up are offered to the other workers and served until one is up
   * with them (by `deadline`, epoch ms); the rest, and what nobody took in time, are released with
   * their state saying so (a restart, not an outage).
   */
  async stop(deadline: number): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.polling;
    const runners = [...this.runners];
    const accepted = await Promise.all(runners.map(([id, runner]) => this.offer(id, runner)));
    const offered = runners.flatMap(([id], i) => (accepted[i] ? [id] : []));
    // With no other gateway to take them, nothing is waited for.
    if (offered.length > 0 && (await this.nudge()) > 0) {
      const { up, claimed } = await this.whenUpElsewhere(offered, deadline);
      // Claimed but not up yet: its new owner's listener holds what arrives until it is; the new
      // owner writes the state, not us.
      await Promise.all([...up, ...claimed].map((id) => this.retireRunner(id, deadline)));
    }
    const ids = [...this.runners.keys()];
    await Promise.all([...ids.map((id) => this.stopRunner(id, true, true)), ...this.retiring]);
  }

  /** Offers a tunnel that is up here to the other workers; false when it is not up or not ours. */
  private async offer(id: string, runner: StandardTunnelRunner): Promise<boolean> {
    const connId = runner.servingConnId;
    if (!connId) return false;
    try {
      return await this.deps.store.handOverLease(id, this.deps.workerId, connId);
    } catch (err) {
      this.deps.logger.warn('standard tunnel not offered: the table did not take it', { tunnelId: id, err });
      return false;
    }
  }

  /** How many other workers will look at the offered leases now. */
  private async nudge(): Promise<number> {
    try {
      return (await this.deps.nudgePeers?.()) ?? 0;
    } catch (err) {
      this.deps.logger.warn('peers not nudged', { err });
      return 0;
    }
  }

  /**
   * Which tunnels of `ids` another worker has up by `deadline` (epoch ms), checked every 100 ms; past
   * it, those another worker claimed get a little longer. `claimed`: taken but still not up.
   */
  private async whenUpElsewhere(
    ids: string[],
    deadline: number,
  ): Promise<{ up: string[]; claimed: string[] }> {
    const { store, workerId, logger } = this.deps;
    const last = deadline + CLAIMED_HANDOVER_EXTRA_MS;
    let up: string[] = [];
    let claimed: string[] = [];
    while (Date.now() < last) {
      try {
        const [states, leases] = await Promise.all([store.getStates(ids), store.getLeases(ids)]);
        up = ids.filter((id) => {
          const state = states.get(id);
          return state?.state === 'up' && state.owner !== undefined && state.owner !== workerId;
        });
        claimed = ids.filter(
          (id) => !up.includes(id) && leases.has(id) && leases.get(id)?.owner !== workerId,
        );
        if (up.length === ids.length || (Date.now() >= deadline && claimed.length === 0)) break;
      } catch (err) {
        logger.warn('standard tunnel handovers not checked: the table did not answer', { err });
      }
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, Math.min(HANDOVER_CHECK_MS, last - Date.now()))),
      );
    }
    return { up, claimed };
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
      else if (lease && lease.owner !== workerId) {
        void this.retireRunner(id, Date.now() + this.deps.handOverDrainMs);
      } else if (lease?.owner !== workerId) await this.stopRunner(id, false);
      else this.runners.get(id)?.update(tunnel);
    }

    // Leases on offer from a worker that still serves them: taken whatever our share, so it can go.
    const at = this.deps.now().toISOString();
    for (const tunnel of wanted.values()) {
      const lease = leases.get(tunnel.id);
      if (!lease?.handingOver || lease.owner === workerId || this.runners.has(tunnel.id)) continue;
      if (await store.claimLease(tunnel.id, workerId, lease.owner, at)) {
        await this.startRunner(tunnel, lease.owner, lease.handingOver);
      }
    }

    // Offer what exceeds our fair share (a worker joined), then claim up to it. A worker that offers
    // leases is leaving (or shedding its excess): it is not counted, or we would offer back what it
    // hands us.
    const staying = new Set(live);
    for (const lease of leases.values()) {
      if (lease.handingOver && lease.owner !== workerId) staying.delete(lease.owner);
    }
    const share = Math.ceil(wanted.size / staying.size);
    let offered = false;
    // Not one still taking over: its listener holds connections until its first session is up.
    const settled = [...this.runners].filter(([, runner]) => !runner.isTakingOver);
    const excess = Math.max(0, this.runners.size - share);
    for (const [id, runner] of settled.slice(Math.max(0, settled.length - excess))) {
      if (leases.get(id)?.handingOver) continue; // on offer already
      logger.info('standard tunnel offered to rebalance', { tunnelId: id, share, workers: staying.size });
      if (await this.offer(id, runner)) offered = true;
      else await this.stopRunner(id, true);
    }
    if (offered) void this.nudge();
    for (const tunnel of wanted.values()) {
      if (this.runners.size >= share) break;
      if (this.runners.has(tunnel.id)) continue;
      const lease = leases.get(tunnel.id);
      if (lease && live.has(lease.owner) && lease.owner !== workerId) continue;
      const stale = lease && lease.owner !== workerId ? lease.owner : undefined;
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

  /** `continues`: the connection of the owner that offered the tunnel and serves until we are up. */
  private async startRunner(
    tunnel: TunnelRecord,
    takenFrom: string | undefined,
    continues?: string,
  ): Promise<void> {
    const runner = new StandardTunnelRunner(
      tunnel,
      { ...this.deps.runner, workerId: this.deps.workerId, logger: this.deps.logger, store: this.deps.store },
      continues,
    );
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
    this.deps.logger.info('standard tunnel claimed', {
      tunnelId: tunnel.id,
      takenFrom,
      handedOver: !!continues,
    });
  }

  /** Another worker took the tunnel over: let this one's open connections finish, then stop. */
  private retireRunner(id: string, deadline: number): Promise<void> {
    const runner = this.runners.get(id);
    if (!runner) return Promise.resolve();
    this.runners.delete(id);
    const retired = runner.retire(deadline).then(() => {
      this.retiring.delete(retired);
      this.deps.logger.info('standard tunnel handed over', { tunnelId: id });
    });
    this.retiring.add(retired);
    return retired;
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

/**
 * Which gateway worker the API asks about a tunnel: the one that wrote the tunnel's latest state
 * (it serves the tunnel), while its heartbeat says it is alive and it has a control endpoint.
 */
import type { WorkerHeartbeat } from '../../shared/gateway-items';
import { type LivenessSettings, workerLiveness } from '../../shared/liveness';
import type { TunnelStore } from '../../shared/store/tunnel-store';

/** A worker the API can reach now. */
export type ReachableWorker = WorkerHeartbeat & { controlUrl: string };

export interface WorkerLookupDeps {
  store: TunnelStore;
  /** When a worker counts as gone (liveness.ts). */
  liveness: LivenessSettings;
  now: () => Date;
  /** Since when this process has seen the table without a gap. */
  observingSince?: () => number | undefined;
}

export interface WorkerLookup {
  /** Whether `beat` is of a live worker with a control endpoint. */
  isReachable(beat: WorkerHeartbeat | undefined): beat is ReachableWorker;
  /** The live worker that wrote the tunnel's latest state, if there is one. */
  owner(tunnelId: string): Promise<ReachableWorker | undefined>;
  /** Any live worker (for work any of them can do). */
  anyWorker(): Promise<ReachableWorker | undefined>;
  /** Every live worker. */
  all(): Promise<ReachableWorker[]>;
}

export function workerLookup(deps: WorkerLookupDeps): WorkerLookup {
  const view = () => ({ now: deps.now(), observingSince: deps.observingSince?.() });
  const isReachable = (beat: WorkerHeartbeat | undefined): beat is ReachableWorker =>
    beat?.controlUrl !== undefined && workerLiveness(beat, view(), deps.liveness).isAlive;
  return {
    isReachable,
    async owner(tunnelId) {
      const sources = (await deps.store.getStatusSources([tunnelId])).get(tunnelId);
      const beat = sources?.state?.owner === sources?.heartbeat?.workerId ? sources?.heartbeat : undefined;
      return isReachable(beat) ? beat : undefined;
    },
    async anyWorker() {
      return (await deps.store.listWorkers()).find(isReachable);
    },
    async all() {
      return (await deps.store.listWorkers()).filter(isReachable);
    },
  };
}

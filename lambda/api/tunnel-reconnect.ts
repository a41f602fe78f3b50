/**
 * `POST /v1/tunnels/{id}/reconnect`: a standard tunnel waiting out its reconnect backoff (after the
 * customer fixed the bastion) connects now, through the worker that serves it. A reverse tunnel is
 * connected by the customer's ssh, which only the customer can restart.
 */
import type { ReconnectOutcome, WorkerControl } from '../../shared/control';
import type { ReconnectAccepted } from '../../shared/schemas';
import type { TunnelRecord } from '../../shared/tunnel';
import { ApiError } from './errors';
import { type ReachableWorker, type WorkerLookupDeps, workerLookup } from './tunnel-owner';

export interface TunnelReconnectDeps extends WorkerLookupDeps {
  control: WorkerControl;
}

/** How soon a caller may try again when the worker serving the tunnel did not answer. */
const GATEWAY_RETRY_AFTER_S = 5;

export async function reconnectTunnel(
  tunnel: TunnelRecord,
  deps: TunnelReconnectDeps,
): Promise<ReconnectAccepted> {
  if (tunnel.type === 'reverse') {
    throw new ApiError(
      409,
      'conflict',
      'reverse tunnels reconnect from the customer side: the gateway cannot dial the customer; ' +
        "restart the customer's ssh or autossh (reverse.commands), which reconnects by itself",
    );
  }
  if (!tunnel.enabled) {
    throw new ApiError(
      409,
      'conflict',
      'the tunnel is disabled: PATCH it with {"enabled": true} and it connects at once',
    );
  }
  const workers = workerLookup(deps);
  // The worker that wrote the tunnel's state serves it. When that one is not known (its heartbeat
  // is late, the lease just moved) or does not serve it, every live worker is asked: the one that
  // serves it answers, the others say so.
  const owner = await workers.owner(tunnel.id);
  const asked = owner ? [await ask(owner, tunnel.id, deps)] : [];
  if (!asked[0]?.outcome) {
    const others = (await workers.all()).filter((w) => w.workerId !== owner?.workerId);
    asked.push(...(await Promise.all(others.map((w) => ask(w, tunnel.id, deps)))));
  }
  const served = asked.find((a) => a.outcome !== undefined);
  if (served?.outcome === 'reconnecting') {
    return {
      outcome: 'reconnecting',
      message: `the backoff is dropped: worker ${served.workerId} connects to the bastion now; GET .../status shows the result`,
    };
  }
  if (served?.outcome === 'connecting') {
    return {
      outcome: 'connecting',
      message: `worker ${served.workerId} is connecting to the bastion right now`,
    };
  }
  if (served?.outcome === 'up') return { outcome: 'up', message: 'the tunnel is up; nothing to reconnect' };
  const silent = asked.find((a) => a.error !== undefined);
  if (silent) {
    throw new ApiError(
      503,
      'unavailable',
      `gateway worker ${silent.workerId} did not answer (${silent.error}); retry shortly`,
      { dependency: 'gateway', reason: 'unreachable' },
      { 'Retry-After': String(GATEWAY_RETRY_AFTER_S) },
    );
  }
  // Nobody to wake: a worker claiming the tunnel connects at once, without backoff.
  return {
    outcome: 'unassigned',
    message:
      asked.length > 0
        ? 'no gateway worker serves the tunnel right now; the one that claims it connects at once'
        : 'no gateway worker is running (none has sent a heartbeat recently); the first to start connects it at once',
  };
}

interface Answer {
  workerId: string;
  outcome?: ReconnectOutcome;
  /** Why the worker could not be asked. */
  error?: string;
}

async function ask(worker: ReachableWorker, tunnelId: string, deps: TunnelReconnectDeps): Promise<Answer> {
  try {
    const outcome = await deps.control.reconnectTunnel(worker.controlUrl, tunnelId);
    return outcome ? { workerId: worker.workerId, outcome } : { workerId: worker.workerId };
  } catch (err) {
    return { workerId: worker.workerId, error: err instanceof Error ? err.message : String(err) };
  }
}

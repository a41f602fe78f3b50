/**
 * `POST /v1/tunnels/{id}/reconnect`: a standard tunnel waiting out its reconnect backoff (after the
 * customer fixed the bastion) connects now, through the worker that serves it. A reverse tunnel is
 * connected by the customer's ssh, which only the customer can restart.
 */
import type { WorkerControl } from '../../shared/control';
import type { ReconnectAccepted } from '../../shared/schemas';
import type { TunnelRecord } from '../../shared/tunnel';
import { ApiError } from './errors';
import { type WorkerLookupDeps, workerLookup } from './tunnel-owner';

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
  const owner = await workers.owner(tunnel.id);
  if (owner) {
    let outcome: Awaited<ReturnType<WorkerControl['reconnectTunnel']>>;
    try {
      outcome = await deps.control.reconnectTunnel(owner.controlUrl, tunnel.id);
    } catch (err) {
      throw new ApiError(
        503,
        'unavailable',
        `gateway worker ${owner.workerId} serving the tunnel did not answer (${(err as Error).message}); retry shortly`,
        { dependency: 'gateway', reason: 'unreachable' },
        { 'Retry-After': String(GATEWAY_RETRY_AFTER_S) },
      );
    }
    if (outcome === 'reconnecting') {
      return {
        outcome,
        message: `the backoff is dropped: worker ${owner.workerId} connects to the bastion now; GET .../status shows the result`,
      };
    }
    if (outcome === 'connecting') {
      return { outcome, message: `worker ${owner.workerId} is connecting to the bastion right now` };
    }
    if (outcome === 'up') return { outcome, message: 'the tunnel is up; nothing to reconnect' };
  }
  // Nobody to wake: a worker claiming the tunnel connects at once, without backoff.
  const running = (await workers.anyWorker()) !== undefined;
  return {
    outcome: 'unassigned',
    message: running
      ? 'no gateway worker serves the tunnel right now; the one that claims it connects at once'
      : 'no gateway worker is running (none has sent a heartbeat recently); the first to start connects it at once',
  };
}

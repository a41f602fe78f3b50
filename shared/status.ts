/**
 * Tunnel status as the API shows it, derived from the configuration and the state item the owning
 * gateway worker writes on every transition. Pure: no I/O, time comes in as data.
 */
import type { TunnelStateItem } from './gateway-items';
import type { Status } from './schemas';

export interface StatusView {
  status: Status;
  /** Where workloads reach the service: only while the tunnel is up. */
  connect: { host: string; port: number } | null;
}

/** Status on read: disabled beats everything; no state item yet means `pending`. */
export function statusOnRead(
  tunnel: { enabled: boolean; createdAt: string; updatedAt: string; port: number },
  state: TunnelStateItem | undefined,
  bindHost: string,
): StatusView {
  if (!tunnel.enabled) return { status: { state: 'disabled', since: tunnel.updatedAt }, connect: null };
  if (!state) return { status: { state: 'pending', since: tunnel.createdAt }, connect: null };
  const status: Status = { state: state.state, since: state.since };
  if (state.lastSeenAt) status.lastSeenAt = state.lastSeenAt;
  if (state.error) status.error = state.error;
  const host = state.connectHost ?? bindHost;
  return { status, connect: state.state === 'up' ? { host, port: tunnel.port } : null };
}

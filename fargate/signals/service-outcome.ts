/**
 * Passive service checks: the outcome of each real connection through a tunnel is the signal
 * (no periodic probe: MySQL blocks a host after `max_connect_errors` aborted connections, and
 * through a bastion that host is the bastion). Only a refusal that means "the service did not
 * accept" counts as unreachable: reason 2, "connect failed" (RFC 4254 §5.1), from the customer's
 * client or the bastion. Anything else (the session going away, a forward the bastion prohibits,
 * the tunnel's channel limit) says nothing about the service.
 */
import { TunnelFailure } from '../standard/bastion-connection';
import type { ChannelOpener } from '../tunnel-listener';
import type { ServiceOutcome } from './gateway-signals';

const CONNECT_FAILED = 2;

/** `opener`, with the outcome of each open reported: reachable when the channel opened. */
export function reportingOutcomes(
  opener: ChannelOpener,
  unreachable: (err: unknown) => string | undefined,
  report: (outcome: ServiceOutcome) => void,
): ChannelOpener {
  return async (origin) => {
    try {
      const channel = await opener(origin);
      report({ reachable: true });
      return channel;
    } catch (err) {
      const message = unreachable(err);
      if (message !== undefined) report({ reachable: false, message });
      throw err;
    }
  };
}

/** Reverse: the customer's client refused the `forwarded-tcpip` channel with "connect failed". */
export function refusedByCustomerClient(err: unknown): string | undefined {
  if (!(err instanceof Error) || (err as Error & { reason?: unknown }).reason !== CONNECT_FAILED)
    return undefined;
  return channelFailureText(err);
}

/** Standard: the bastion could not connect to the service (its `direct-tcpip` open failed so). */
export function refusedByBastion(err: unknown): string | undefined {
  if (!(err instanceof TunnelFailure) || err.status.code !== 'service_unreachable') return undefined;
  return err.cause instanceof Error ? channelFailureText(err.cause) : err.message;
}

/** ssh2's "(SSH) Channel open failure: Connection refused" as the peer said it: "Connection refused". */
function channelFailureText(err: Error): string {
  return err.message.replace(/^\(SSH\) /, '').replace(/^Channel open failure: /, '') || 'connect failed';
}

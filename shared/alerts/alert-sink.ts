/**
 * The port alerts leave through. Sinks deliver one alert once, retrying transient failures within
 * their own tight bounds; retries across sweeps, ordering and exactly-once bookkeeping belong to the
 * sweeper's outbox (lambda/sweeper/sweep.ts).
 */
import type { Alert } from '../schemas';

export interface AlertDelivery {
  /** Stable for the incident edge (`<tunnel id>:tunnel.down@<since>`): receivers may de-duplicate on it. */
  id: string;
  /** Exactly the contract's alert object. */
  body: Alert;
  /** Aborted when the process stops: give up at once (the outbox retries later). */
  signal?: AbortSignal;
}

export interface AlertSink {
  /** Stable name; the outbox tracks each alert's progress per sink under it. */
  readonly name: string;
  /** Resolves once delivered; rejects with `AlertDeliveryError` (retryable or not). */
  send(delivery: AlertDelivery): Promise<void>;
}

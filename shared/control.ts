/**
 * The gateway workers' internal control endpoint, as the API sees it: runs a tunnel's test on the
 * worker that holds (or can reach) it. Authenticated with a token kept in the secret store; served
 * on the worker's VPC address only, never on the public port.
 */

import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { TestResult } from './schemas';
import { ensureSecret } from './secrets/ensure-secret';
import { secretNames } from './secrets/secret-names';
import type { SecretStore } from './secrets/secret-store';

/** `POST <controlUrl>/tunnels/<id>/test` answers a `TestResult` of the worker-side checks. */
export const controlTestPath = (tunnelId: string): string => `/tunnels/${tunnelId}/test`;

/**
 * `POST <controlUrl>/tunnels/<id>/reconnect` answers 202 `{"outcome"}` when the worker serves the
 * standard tunnel (it drops the backoff and connects now), 404 when it does not.
 */
export const controlReconnectPath = (tunnelId: string): string => `/tunnels/${tunnelId}/reconnect`;

export const ReconnectOutcomeSchema = z.enum(['reconnecting', 'up', 'connecting']);
/** What the worker did: woke a retry, found the tunnel up, or found an attempt under way. */
export type ReconnectOutcome = z.infer<typeof ReconnectOutcomeSchema>;
/** The worker's 202 body. */
export const ReconnectAnswerSchema = z.object({ outcome: ReconnectOutcomeSchema });

export interface WorkerControl {
  /** Runs the worker-side checks of a tunnel on the worker at `controlUrl`. */
  testTunnel(controlUrl: string, tunnelId: string): Promise<TestResult>;
  /** Asks the worker at `controlUrl` to connect the tunnel now; undefined when it does not serve it. */
  reconnectTunnel(controlUrl: string, tunnelId: string): Promise<ReconnectOutcome | undefined>;
}

/** Reads the control token, creating it on first use. */
export async function ensureControlToken(secrets: SecretStore): Promise<string> {
  const token = await ensureSecret(
    secrets,
    secretNames.controlToken,
    async () => `tkc_${randomBytes(32).toString('base64url')}`,
  );
  return token.trim();
}

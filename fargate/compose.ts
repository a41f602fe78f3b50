/**
 * The gateway's dependencies from configuration: the one place the Fargate entry point and
 * `npm start` (and with it the tests) build them. What differs between runtimes (the secret store,
 * the worker's own address, whether private bastions are allowed by default) comes in as wiring.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Env } from '../shared/config';
import type { KeyCrypto } from '../shared/key-crypto';
import type { Logger } from '../shared/logger';
import type { OperatorMetrics } from '../shared/metrics/operator-metrics';
import type { SecretStore } from '../shared/secrets/secret-store';
import { DynamoGatewayStore } from '../shared/store/dynamo-gateway-store';
import type { StorageHealth } from '../shared/store/storage-outage';
import { type GatewayDeps, gatewaySettingsFrom } from './gateway';

export interface GatewayWiring {
  doc: DynamoDBDocumentClient;
  health?: StorageHealth;
  secrets: SecretStore;
  logger: Logger;
  /** Where key derivation and large-RSA signatures run (the process's worker pool). */
  keyCrypto?: KeyCrypto;
  /**
   * The worker's address as the platform's workloads reach it: its tunnel listeners bind it and
   * `connect.host` names it (on Fargate, the task's VPC address). Default: `WORKER_ADDRESS`, else
   * `TUNNEL_BIND_HOST`.
   */
  address?: string;
  /** Where the SSH endpoint listens when `SSH_HOST` is unset (default `HOST`). */
  sshHost?: string;
  /** `ALLOW_PRIVATE_SSH_HOSTS` when unset: `npm start` allows private bastions, AWS does not. */
  allowPrivateSshHostsByDefault: boolean;
  /** The process's operator metrics (shared with the API under `npm start`). */
  metrics?: OperatorMetrics;
  /** SHA-256 (hex) of the operator token, for `GET /metrics` on the control endpoint. */
  adminTokenHash?: string;
}

export function gatewayDepsFromEnv(env: Env, wiring: GatewayWiring): GatewayDeps {
  const settings = gatewaySettingsFrom(env);
  const address = wiring.address ?? settings.connectHost;
  const deps: GatewayDeps = {
    store: new DynamoGatewayStore(wiring.doc, env.TABLE_NAME),
    secrets: wiring.secrets,
    logger: wiring.logger,
    settings: {
      ...settings,
      sshHost: env.SSH_HOST ?? wiring.sshHost ?? env.HOST,
      bindHost: wiring.address ?? settings.bindHost,
      connectHost: address,
      allowPrivateSshHosts: env.ALLOW_PRIVATE_SSH_HOSTS ?? wiring.allowPrivateSshHostsByDefault,
    },
  };
  const { health } = wiring;
  if (health) deps.observingSince = () => health.observingSince;
  if (wiring.keyCrypto) deps.keyCrypto = wiring.keyCrypto;
  if (wiring.metrics) deps.metrics = wiring.metrics;
  if (wiring.adminTokenHash) deps.adminTokenHash = wiring.adminTokenHash;
  return deps;
}

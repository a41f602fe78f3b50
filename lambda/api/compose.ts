/**
 * The API's dependencies from configuration: the one place the Lambda handler, `npm start` and the
 * tests build them. What differs between runtimes (where secrets live, how the operator token and
 * the host key are had, who the caller is) comes in as wiring; everything else from `env`.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'hono';
import { ChannelCredentialSealer } from '../../shared/alerts/channel-credentials';
import { channelSettingsFrom } from '../../shared/alerts/channel-sink';
import type { Env } from '../../shared/config';
import type { WorkerControl } from '../../shared/control';
import type { KeyCrypto } from '../../shared/key-crypto';
import type { Logger } from '../../shared/logger';
import type { SecretStore } from '../../shared/secrets/secret-store';
import { endpointLimitsFrom } from '../../shared/service-info';
import { statusSettingsFrom } from '../../shared/status';
import { DynamoAlertChannelStore } from '../../shared/store/dynamo-alert-channels';
import { DynamoTunnelStore } from '../../shared/store/dynamo-tunnel-store';
import type { StorageHealth } from '../../shared/store/storage-outage';
import type { ApiDeps, ApiLimits } from './app';
import type { ConsoleSource } from './console-files';
import type { ReadinessCheck } from './readiness';

/**
 * Per instance: a workspace's dashboards and scripts get 50 requests/s with bursts of 100 (API
 * Gateway's throttling is the global guard); an address without valid credentials gets 5/s with
 * bursts of 20, enough for a person retyping a key, little for a scanner.
 */
export const DEFAULT_LIMITS: Omit<ApiLimits, 'maxTunnelsPerWorkspace'> = {
  perWorkspace: { ratePerSec: 50, burst: 100 },
  unauthenticatedPerSource: { ratePerSec: 5, burst: 20 },
  maxApiKeysPerWorkspace: 10,
};

export interface ApiWiring {
  doc: DynamoDBDocumentClient;
  /** What this process has seen of the table (createDynamoClients). */
  health?: StorageHealth;
  secrets: SecretStore;
  /** Readiness of the secret store, where it can be checked cheaply (the local file store). */
  secretsCheck?: () => Promise<void>;
  /** More to check of the table than that it answers a read (DynamoDB Local's disk). */
  storageCheck?: () => Promise<void>;
  logger: Logger;
  /** SHA-256 (hex) of the operator token. */
  adminTokenHash: string;
  /** The gateway's SSH host key (its `known_hosts` line goes into customer commands). */
  hostPublicKey: string;
  /** The port customers dial: `PUBLIC_SSH_PORT`, else the runtime's own (22 in AWS). */
  sshPort: number;
  workerControl: WorkerControl;
  /** Where key derivation and RSA generation run (a worker pool where others are served meanwhile). */
  keyCrypto?: KeyCrypto;
  onTunnelChanged?: (tunnelId: string) => void;
  clientAddress?: (c: Context) => string | undefined;
  now?: () => Date;
  /** The process's operator metrics, for `GET /metrics` (`npm start`). */
  metrics?: ApiDeps['metrics'];
  /** The customer console's files (built at start locally, read beside the bundle in Lambda). */
  console?: ConsoleSource;
  /** `ALLOW_PRIVATE_SSH_HOSTS` when unset, for alert channel URLs: `npm start` allows them, AWS does not. */
  allowPrivateTargetsByDefault?: boolean;
}

export function apiDepsFromEnv(env: Env, wiring: ApiWiring): ApiDeps {
  const store = new DynamoTunnelStore(wiring.doc, env.TABLE_NAME);
  const { storageCheck } = wiring;
  const readiness: ReadinessCheck[] = [
    {
      name: 'storage',
      run: async () => {
        await store.ping();
        await storageCheck?.();
      },
    },
  ];
  const { secretsCheck } = wiring;
  if (secretsCheck) readiness.push({ name: 'secrets', run: secretsCheck });
  const deps: ApiDeps = {
    store,
    secrets: wiring.secrets,
    logger: wiring.logger,
    portRange: env.TUNNEL_PORT_RANGE,
    adminTokenHash: wiring.adminTokenHash,
    statusSettings: statusSettingsFrom(env),
    limits: { ...DEFAULT_LIMITS, maxTunnelsPerWorkspace: env.MAX_TUNNELS_PER_WORKSPACE },
    readiness,
    gateway: {
      sshHost: env.PUBLIC_SSH_HOST,
      sshPort: env.PUBLIC_SSH_PORT ?? wiring.sshPort,
      hostPublicKey: wiring.hostPublicKey,
      keepaliveIntervalSec: Math.max(1, Math.round(env.SSH_KEEPALIVE_INTERVAL_MS / 1000)),
    },
    workerControl: wiring.workerControl,
    egressIps: env.EGRESS_IPS,
    endpointLimits: endpointLimitsFrom(env),
    alertChannels: {
      store: new DynamoAlertChannelStore(wiring.doc, env.TABLE_NAME),
      // The API creates the alert channel key on first use (as the control token); one per process.
      credentials: new ChannelCredentialSealer(wiring.secrets, 'create'),
      settings: channelSettingsFrom(env, wiring.allowPrivateTargetsByDefault ?? false),
      maxPerWorkspace: env.MAX_ALERT_CHANNELS_PER_WORKSPACE,
    },
  };
  const { health } = wiring;
  if (health) deps.observingSince = () => health.observingSince;
  if (wiring.keyCrypto) deps.keyCrypto = wiring.keyCrypto;
  if (wiring.onTunnelChanged) deps.onTunnelChanged = wiring.onTunnelChanged;
  if (wiring.clientAddress) deps.clientAddress = wiring.clientAddress;
  if (wiring.now) deps.now = wiring.now;
  if (wiring.metrics) deps.metrics = wiring.metrics;
  if (wiring.console) deps.console = wiring.console;
  return deps;
}

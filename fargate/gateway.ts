/**
 * One gateway worker: the reverse-tunnel SSH endpoint with its per-tunnel listeners, the worker
 * heartbeat, and the reconciliation that closes sessions of tunnels deleted, disabled or rotated
 * away. The Fargate entry point and `npm start` both run this.
 */
import { randomBytes } from 'node:crypto';
import type { BackoffSettings } from '../shared/backoff';
import type { Env } from '../shared/config';
import { ensureControlToken } from '../shared/control';
import { ensureHostKey } from '../shared/host-key';
import { inlineKeyCrypto, type KeyCrypto } from '../shared/key-crypto';
import { parsePublicKey } from '../shared/keys';
import type { Logger } from '../shared/logger';
import type { SecretStore } from '../shared/secrets/secret-store';
import type { GatewayStore } from '../shared/store/gateway-store';
import type { TunnelRecord } from '../shared/tunnel';
import { ControlServer } from './control-server';
import { diagnoseTunnel } from './diagnostics/diagnose';
import { tuneGcForThroughput } from './gc-tuning';
import { hasNativeSshCrypto } from './native-crypto';
import { ForwardRegistry } from './reverse/forward-registry';
import { DEFAULT_CIPHERS, ReverseServer } from './reverse/reverse-server';
import { DEFAULT_SOURCE_GUARD, type SourceGuardSettings } from './source-guard';
import type { BastionConnectOptions } from './standard/bastion-connection';
import { BastionKeyLoader } from './standard/bastion-keys';
import { StandardPool } from './standard/standard-pool';
import { StateWriter } from './state-writer';

export const GATEWAY_VERSION = '0.1.0';
/** Heartbeat items outlive their worker by this much, then DynamoDB's TTL removes them. */
const HEARTBEAT_TTL_SECONDS = 24 * 3600;
const TAKEOVER_DRAIN_MS = 2_000;
const PROBE_TIMEOUT_MS = 5_000;

export interface GatewaySettings {
  sshHost: string;
  sshPort: number;
  bindHost: string;
  connectHost: string;
  heartbeatIntervalMs: number;
  keepaliveIntervalMs: number;
  handshakeTimeoutMs: number;
  maxChannelsPerTunnel: number;
  guard: SourceGuardSettings;
  ciphers: string[];
  poolPollIntervalMs: number;
  /** The control endpoint listens on `connectHost` at this port (0: any free port). */
  controlPort: number;
  allowPrivateSshHosts: boolean;
  bastionReadyTimeoutMs: number;
  reconnect: BackoffSettings;
}

export function gatewaySettingsFrom(env: Env): GatewaySettings {
  return {
    sshHost: env.SSH_HOST ?? env.HOST,
    sshPort: env.SSH_PORT,
    bindHost: env.TUNNEL_BIND_HOST,
    connectHost: env.WORKER_ADDRESS ?? env.TUNNEL_BIND_HOST,
    heartbeatIntervalMs: env.HEARTBEAT_INTERVAL_MS,
    keepaliveIntervalMs: env.SSH_KEEPALIVE_INTERVAL_MS,
    handshakeTimeoutMs: env.SSH_HANDSHAKE_TIMEOUT_MS,
    maxChannelsPerTunnel: env.MAX_CHANNELS_PER_TUNNEL,
    guard: DEFAULT_SOURCE_GUARD,
    ciphers: DEFAULT_CIPHERS,
    poolPollIntervalMs: env.POOL_POLL_INTERVAL_MS,
    controlPort: env.CONTROL_PORT,
    // Off unless configured: the entry points decide (npm start allows private bastions).
    allowPrivateSshHosts: env.ALLOW_PRIVATE_SSH_HOSTS ?? false,
    bastionReadyTimeoutMs: env.BASTION_READY_TIMEOUT_MS,
    reconnect: {
      initialMs: env.RECONNECT_INITIAL_MS,
      maxMs: env.RECONNECT_MAX_MS,
      healthyAfterMs: Math.max(env.RECONNECT_MAX_MS, 10_000),
    },
  };
}

export interface GatewayDeps {
  store: GatewayStore;
  secrets: SecretStore;
  logger: Logger;
  settings: GatewaySettings;
  now?: () => Date;
  /**
   * Decrypts passphrase-protected bastion keys and signs with large RSA keys off the event loop:
   * the process's key crypto pool (fargate/main.ts, local/stack.ts). Inline when absent (tests).
   */
  keyCrypto?: KeyCrypto;
}

export class Gateway {
  readonly workerId = `wk_${randomBytes(6).toString('hex')}`;
  private readonly startedAt: string;
  private readonly logger: Logger;
  private readonly stateWriter: StateWriter;
  private readonly registry: ForwardRegistry;
  private server: ReverseServer | undefined;
  private readonly pool: StandardPool;
  private lastOwnBeat = 0;
  private control: ControlServer | undefined;
  private controlUrl: string | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private beating: Promise<void> = Promise.resolve();
  private boundSshPort = 0;
  private readonly bastionKeys: BastionKeyLoader;

  constructor(private readonly deps: GatewayDeps) {
    this.bastionKeys = new BastionKeyLoader(deps.keyCrypto ?? inlineKeyCrypto);
    const now = deps.now ?? (() => new Date());
    this.startedAt = now().toISOString();
    this.logger = deps.logger.child({ workerId: this.workerId });
    this.stateWriter = new StateWriter(deps.store, this.logger);
    this.registry = new ForwardRegistry({
      workerId: this.workerId,
      bindHost: deps.settings.bindHost,
      connectHost: deps.settings.connectHost,
      maxChannelsPerTunnel: deps.settings.maxChannelsPerTunnel,
      takeoverDrainMs: TAKEOVER_DRAIN_MS,
      logger: this.logger,
      stateWriter: this.stateWriter,
      now,
    });
    const { settings } = deps;
    this.pool = new StandardPool({
      workerId: this.workerId,
      store: deps.store,
      logger: this.logger,
      pollIntervalMs: settings.poolPollIntervalMs,
      leaseTtlMs: 3 * settings.heartbeatIntervalMs,
      lastOwnBeat: () => this.lastOwnBeat,
      now,
      runner: {
        stateWriter: this.stateWriter,
        secrets: deps.secrets,
        bindHost: settings.bindHost,
        connectHost: settings.connectHost,
        maxChannelsPerTunnel: settings.maxChannelsPerTunnel,
        connect: this.bastionConnectOptions(),
        backoff: settings.reconnect,
        keyProbeIntervalMs: Math.max(1_000, settings.heartbeatIntervalMs),
        drainMs: TAKEOVER_DRAIN_MS,
        now,
      },
    });
  }

  /** The SSH endpoint's bound port (differs from the setting when that is 0). */
  get sshPort(): number {
    return this.boundSshPort;
  }

  get connectionCount(): number {
    return this.server?.connectionCount ?? 0;
  }

  get reverseTunnelCount(): number {
    return this.registry.size;
  }

  /** Healthy while its own heartbeat is fresh: a worker that cannot beat has lost its tunnels' leases. */
  get healthy(): boolean {
    return Date.now() - this.lastOwnBeat <= 3 * this.deps.settings.heartbeatIntervalMs;
  }

  get standardTunnelCount(): number {
    return this.pool.size;
  }

  async start(): Promise<void> {
    const { settings } = this.deps;
    tuneGcForThroughput();
    if (!hasNativeSshCrypto()) {
      this.logger.warn('ssh2 native crypto helper missing', {
        consequence:
          'ciphers run in JavaScript: a third less throughput per tunnel or worse, more CPU per byte',
        fix: 'install with a C++ toolchain and python3 so node-gyp builds ssh2/lib/protocol/crypto (npm rebuild ssh2)',
      });
    }
    const hostKey = await ensureHostKey(this.deps.secrets);
    this.server = new ReverseServer({
      store: this.deps.store,
      registry: this.registry,
      logger: this.logger,
      hostKey: hostKey.privateKey,
      now: this.deps.now ?? (() => new Date()),
      settings: {
        listenHost: settings.sshHost,
        listenPort: settings.sshPort,
        keepaliveIntervalMs: settings.keepaliveIntervalMs,
        keepaliveCountMax: 3,
        handshakeTimeoutMs: settings.handshakeTimeoutMs,
        maxAuthAttempts: 6,
        ciphers: settings.ciphers,
        guard: settings.guard,
      },
      onLogin: (tunnel, keyFingerprint) => this.onLogin(tunnel, keyFingerprint),
    });
    this.control = new ControlServer({
      host: settings.connectHost,
      port: settings.controlPort,
      token: await ensureControlToken(this.deps.secrets),
      logger: this.logger,
      testTunnel: (id) =>
        diagnoseTunnel(id, {
          store: this.deps.store,
          secrets: this.deps.secrets,
          registry: this.registry,
          connect: this.bastionConnectOptions(),
          workerId: this.workerId,
          probeTimeoutMs: PROBE_TIMEOUT_MS,
          logger: this.logger,
        }),
    });
    this.controlUrl = await this.control.listen();
    this.logger.info('control endpoint listening', { url: this.controlUrl });
    // Beat first: a login right after listen() must find its owner alive, not `worker_lost`.
    await this.beat();
    this.boundSshPort = await this.server.listen();
    this.logger.info('ssh endpoint listening', { host: settings.sshHost, port: this.boundSshPort });
    this.pool.start();
    this.beatTimer = setInterval(() => {
      this.beating = this.beating.then(() => this.beat());
    }, settings.heartbeatIntervalMs);
    this.beatTimer.unref();
  }

  private bastionConnectOptions(): BastionConnectOptions {
    const { settings } = this.deps;
    return {
      allowPrivateHosts: settings.allowPrivateSshHosts,
      readyTimeoutMs: settings.bastionReadyTimeoutMs,
      keepaliveIntervalMs: settings.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      keys: this.bastionKeys,
    };
  }

  /** Re-checks one tunnel now (after an API change) instead of at the next heartbeat. */
  notifyTunnelChanged(tunnelId: string): void {
    this.pool.requestPoll();
    if (!this.registry.sessionOf(tunnelId)) return;
    this.recheck([tunnelId]).catch((err) => this.logger.warn('tunnel recheck failed', { tunnelId, err }));
  }

  /**
   * Closes the endpoint and every session (their state is written down), releases the standard
   * leases, then removes the heartbeat: until it is gone the other workers still count this one in
   * their fair share and would leave the released tunnels alone until it went stale.
   */
  async stop(): Promise<void> {
    clearInterval(this.beatTimer);
    await this.beating;
    await Promise.all([this.server?.close(), this.pool.stop(), this.control?.close()]);
    await this.stateWriter.flush();
    await this.deps.store
      .deleteHeartbeat(this.workerId)
      .catch((err) => this.logger.warn('heartbeat not removed; others wait for it to go stale', { err }));
  }

  private async beat(): Promise<void> {
    const at = (this.deps.now ?? (() => new Date()))().toISOString();
    try {
      await this.deps.store.putHeartbeat(
        {
          workerId: this.workerId,
          lastBeatAt: at,
          startedAt: this.startedAt,
          address: this.deps.settings.connectHost,
          version: GATEWAY_VERSION,
          controlUrl: this.controlUrl,
          counts: { reverse: this.registry.size, standard: this.pool.size },
        },
        HEARTBEAT_TTL_SECONDS,
      );
      this.lastOwnBeat = Date.parse(at);
    } catch (err) {
      this.logger.error('heartbeat write failed', { err });
    }
    try {
      await this.recheck(this.registry.tunnelIds());
    } catch (err) {
      this.logger.warn('tunnel reconciliation failed', { err });
    }
  }

  /** Closes sessions whose tunnel was deleted, disabled, or whose login key is no longer valid. */
  private async recheck(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const records = await this.deps.store.getTunnelsByIds(ids);
    for (const id of ids) {
      const session = this.registry.sessionOf(id);
      if (!session) continue;
      const record = records.get(id);
      if (!record) this.registry.closeTunnel(id, 'tunnel deleted');
      else if (!record.enabled) this.registry.closeTunnel(id, 'tunnel disabled');
      else if (!acceptedFingerprints(record).includes(session.keyFingerprint)) {
        this.registry.closeTunnel(id, 'login key was rotated away');
      }
    }
  }

  /** A login with the tunnel's newest key completes a rotation: the previous key is retired. */
  private onLogin(tunnel: TunnelRecord, keyFingerprint: string): void {
    if (!tunnel.previousPublicKey || keyFingerprint !== tunnel.publicKeyFingerprint) return;
    this.deps.store
      .retirePreviousKey(tunnel.id, tunnel.previousPublicKey)
      .then(() => this.logger.info('previous tunnel key retired', { tunnelId: tunnel.id }))
      .catch((err) => this.logger.warn('previous tunnel key not retired', { tunnelId: tunnel.id, err }));
  }
}

function acceptedFingerprints(record: TunnelRecord): string[] {
  const fingerprints = [record.publicKeyFingerprint];
  if (record.previousPublicKey) {
    try {
      fingerprints.push(parsePublicKey(record.previousPublicKey, 'previousPublicKey').fingerprint);
    } catch {
      // an unparseable previous key accepts nothing
    }
  }
  return fingerprints;
}

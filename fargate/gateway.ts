/**
 * One gateway worker: the reverse-tunnel SSH endpoint with its per-tunnel listeners, the worker
 * heartbeat, and the reconciliation that closes sessions of tunnels deleted, disabled or rotated
 * away. The Fargate entry point and `npm start` both run this.
 */
import { randomBytes } from 'node:crypto';
import type { BackoffSettings } from '../shared/backoff';
import type { Env } from '../shared/config';
import { PRIMARY_CONNECTOR_ID } from '../shared/connectors';
import { ensureControlToken } from '../shared/control';
import type { WorkerHeartbeat } from '../shared/gateway-items';
import { ensureHostKey } from '../shared/host-key';
import { inlineKeyCrypto, type KeyCrypto } from '../shared/key-crypto';
import { parsePublicKey } from '../shared/keys';
import { workerGoneAfterMs } from '../shared/liveness';
import type { Logger } from '../shared/logger';
import { type GatewayFigures, OperatorMetrics } from '../shared/metrics/operator-metrics';
import { SecretCache } from '../shared/secrets/secret-cache';
import type { SecretStore } from '../shared/secrets/secret-store';
import type { GatewayStore } from '../shared/store/gateway-store';
import type { TunnelRecord } from '../shared/tunnel';
import type { AdmissionSettings, AdmissionStats } from './admission/admission-control';
import { DEFAULT_PENALTIES } from './admission/source-penalties';
import { ControlServer } from './control-server';
import { diagnoseTunnel } from './diagnostics/diagnose';
import { tuneGcForThroughput } from './gc-tuning';
import { hasNativeSshCrypto } from './native-crypto';
import { CarriesWriter } from './peers/carries-writer';
import { PeerCarries } from './peers/peer-carries';
import { livePeerBeats, livePeers, peerHoldings } from './peers/peer-directory';
import { PeerRelay } from './peers/peer-relay';
import { nudgePeers } from './peers/pool-nudge';
import { ForwardRegistry } from './reverse/forward-registry';
import { ReverseServer } from './reverse/reverse-server';
import type { TunnelCacheSettings } from './reverse/tunnel-cache';
import { GatewaySignals } from './signals/gateway-signals';
import { SignalWriter } from './signals/signal-writer';
import type { BastionConnectOptions } from './standard/bastion-connection';
import { BastionKeyLoader } from './standard/bastion-keys';
import { StandardPool } from './standard/standard-pool';
import { TUNNEL_SECRET_MAX_ENTRIES, TUNNEL_SECRET_TTL_MS, TunnelSecrets } from './standard/tunnel-secrets';
import { StateWriter } from './state-writer';
import { TrafficMeter } from './traffic-meter';
import { TunnelChangeFollower } from './tunnel-change-follower';

export const GATEWAY_VERSION = '0.1.0';
/** Heartbeat items outlive their worker by this much, then DynamoDB's TTL removes them. */
const HEARTBEAT_TTL_SECONDS = 24 * 3600;
const TAKEOVER_DRAIN_MS = 2_000;
const PROBE_TIMEOUT_MS = 5_000;
/** A failed heartbeat is tried again this soon (at most one interval). */
const BEAT_RETRY_MS = 1_000;
/** What a shutdown gives its last state writes and heartbeat (npm start must stop within 10 s). */
const STOP_WRITES_MS = 3_000;
/** What a shutdown waits for relayed connections through its control endpoint to end. */
const CONTROL_CLOSE_MS = 1_000;
/** A login's tunnel read unanswered after this is an outage: well inside the handshake deadline. */
const LOGIN_READ_TIMEOUT_MS = 5_000;
/** A penalized source keeps at least this many unauthenticated connections: a customer may share its address. */
const PENALIZED_SOURCE_MIN_STARTUPS = 8;
/** A tunnel's signals are written at most this often (and within a heartbeat when that is shorter). */
const SIGNAL_WRITE_INTERVAL_MS = 1_000;
/** Tunnels whose signals this gateway remembers (per kind), or holds unwritten during an outage. */
const SIGNAL_MAX_TUNNELS = 20_000;
/** A peer that has not taken a nudge (`POST /pool/poll`) by then is left to its own next poll. */
const NUDGE_TIMEOUT_MS = 1_000;
/** A peer that has not taken a relayed connection by then is given up on for the next one. */
const RELAY_TIMEOUT_MS = 2_000;
/** Tunnels whose traffic one TRAFFIC item carries (the busiest): about 50 bytes each, far under 400 KB. */
const TRAFFIC_MAX_TUNNELS = 2_000;

export interface GatewaySettings {
  sshHost: string;
  sshPort: number;
  bindHost: string;
  connectHost: string;
  heartbeatIntervalMs: number;
  keepaliveIntervalMs: number;
  handshakeTimeoutMs: number;
  maxChannelsPerTunnel: number;
  dataIdleTimeoutMs: number;
  admission: AdmissionSettings;
  maxSessionsPerTunnel: number;
  loginCache: TunnelCacheSettings;
  poolPollIntervalMs: number;
  /** The control endpoint listens on `connectHost` at this port (0: any free port). */
  controlPort: number;
  allowPrivateSshHosts: boolean;
  bastionReadyTimeoutMs: number;
  reconnect: BackoffSettings;
  /** `ROTATION_DRAIN_MAX_MS`: the longest a standard session a rotation replaced keeps its connections. */
  rotationDrainMaxMs: number;
  /** `SHUTDOWN_DRAIN_MS`: how long a shutdown lets reverse sessions finish their connections. */
  shutdownDrainMs: number;
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
    dataIdleTimeoutMs: env.DATA_IDLE_TIMEOUT_MS,
    admission: {
      maxStartups: env.SSH_MAX_STARTUPS,
      perSourceMaxStartups: env.SSH_PER_SOURCE_MAX_STARTUPS,
      penalizedSourceMinStartups: PENALIZED_SOURCE_MIN_STARTUPS,
      bannerTimeoutMs: env.SSH_BANNER_TIMEOUT_MS,
      penalties: DEFAULT_PENALTIES,
    },
    maxSessionsPerTunnel: env.MAX_SESSIONS_PER_TUNNEL,
    loginCache: { ttlMs: env.SSH_LOGIN_CACHE_TTL_MS, maxTunnels: env.SSH_LOGIN_CACHE_MAX_TUNNELS },
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
    rotationDrainMaxMs: env.ROTATION_DRAIN_MAX_MS,
    shutdownDrainMs: env.SHUTDOWN_DRAIN_MS,
  };
}

export interface GatewayDeps {
  store: GatewayStore;
  secrets: SecretStore;
  logger: Logger;
  settings: GatewaySettings;
  now?: () => Date;
  /** Since when this process has seen the table without a gap (`StorageHealth.observingSince`). */
  observingSince?: () => number | undefined;
  /**
   * Decrypts passphrase-protected bastion keys and signs with large RSA keys off the event loop:
   * the process's key crypto pool (fargate/main.ts, local/stack.ts). Inline when absent (tests).
   */
  keyCrypto?: KeyCrypto;
  /** Relays only once `startRelaying()` is called (the process has more to start after the gateway). */
  defersRelaying?: boolean;
  /** The process's operator metrics (`npm start` shares one with the API); a registry of its own when absent. */
  metrics?: OperatorMetrics;
  /**
   * SHA-256 (hex) of the operator token, which `GET /metrics` on the control endpoint takes; without
   * it that route refuses every caller.
   */
  adminTokenHash?: string;
}

export class Gateway {
  readonly workerId = `wk_${randomBytes(6).toString('hex')}`;
  private readonly startedAt: string;
  private readonly logger: Logger;
  private readonly stateWriter: StateWriter;
  /** When the last heartbeat write succeeded (epoch ms). */
  private lastBeatWrittenAt: number | undefined;
  private readonly signalWriter: SignalWriter;
  private readonly signals: GatewaySignals;
  private readonly registry: ForwardRegistry;
  private server: ReverseServer | undefined;
  private readonly pool: StandardPool;
  private control: ControlServer | undefined;
  private controlUrl: string | undefined;
  private controlToken: string | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private beating: Promise<void> = Promise.resolve();
  private boundSshPort = 0;
  private isServing = false;
  private isRechecking = false;
  private isSyncingPeers = false;
  private isRelaying: boolean;

  private readonly now: () => Date;
  private readonly bastionKeys: BastionKeyLoader;
  /** Standard tunnels' credentials, cached for their reconnects and tests. */
  private readonly tunnelSecrets: TunnelSecrets;
  readonly metrics: OperatorMetrics;
  private readonly meter: TrafficMeter;
  private detachMetrics: (() => void) | undefined;
  /** The per-tunnel traffic last written, so an unchanged one is not written again. */
  private writtenTraffic = '{}';
  /** The reverse tunnels carried here, told to the peers shard by shard as they change. */
  private readonly carriesWriter: CarriesWriter;
  /** What the peers carry, read as their shards change. */
  private readonly peerCarries: PeerCarries;
  /** The table's log of tunnel changes, followed with each heartbeat. */
  private readonly changes: TunnelChangeFollower;

  constructor(private readonly deps: GatewayDeps) {
    this.isRelaying = !deps.defersRelaying;
    this.bastionKeys = new BastionKeyLoader(deps.keyCrypto ?? inlineKeyCrypto);
    const now = deps.now ?? (() => new Date());
    this.now = now;
    this.startedAt = now().toISOString();
    this.logger = deps.logger.child({ workerId: this.workerId });
    this.metrics = deps.metrics ?? new OperatorMetrics();
    this.meter = new TrafficMeter(now, this.metrics);
    this.tunnelSecrets = new TunnelSecrets(
      new SecretCache(
        deps.secrets,
        { ttlMs: TUNNEL_SECRET_TTL_MS, maxEntries: TUNNEL_SECRET_MAX_ENTRIES },
        { now: () => now().getTime(), counter: this.metrics },
      ),
    );
    this.stateWriter = new StateWriter(deps.store, this.logger);
    this.carriesWriter = new CarriesWriter({
      workerId: this.workerId,
      putCarries: (carries, ttlSeconds) => deps.store.putCarries(carries, ttlSeconds),
      ttlSeconds: HEARTBEAT_TTL_SECONDS,
      logger: this.logger,
      now,
    });
    this.peerCarries = new PeerCarries((refs) => deps.store.getCarries(refs));
    // The log's times are the writers' wall clocks, whatever clock the gateway is given.
    this.changes = new TunnelChangeFollower((sinceMs, untilMs) =>
      deps.store.listTunnelChanges(sinceMs, untilMs),
    );
    this.signalWriter = new SignalWriter(deps.store, this.logger, {
      minIntervalMs: Math.min(SIGNAL_WRITE_INTERVAL_MS, deps.settings.heartbeatIntervalMs),
      maxPendingTunnels: SIGNAL_MAX_TUNNELS,
    });
    this.signals = new GatewaySignals({
      write: (tunnelId, signals) => this.signalWriter.set(tunnelId, signals),
      now,
      maxTunnels: SIGNAL_MAX_TUNNELS,
    });
    this.registry = new ForwardRegistry({
      workerId: this.workerId,
      bindHost: deps.settings.bindHost,
      connectHost: deps.settings.connectHost,
      maxChannelsPerTunnel: deps.settings.maxChannelsPerTunnel,
      dataIdleTimeoutMs: deps.settings.dataIdleTimeoutMs,
      takeoverDrainMs: TAKEOVER_DRAIN_MS,
      logger: this.logger,
      stateWriter: this.stateWriter,
      signals: this.signals,
      meter: this.meter,
      now,
    });
    const { settings } = deps;
    this.pool = new StandardPool({
      workerId: this.workerId,
      store: deps.store,
      logger: this.logger,
      pollIntervalMs: settings.poolPollIntervalMs,
      liveness: settings,
      observingSince: () => deps.observingSince?.(),
      now,
      handOverDrainMs: settings.shutdownDrainMs,
      nudgePeers: () => this.nudgePeers(),
      runner: {
        stateWriter: this.stateWriter,
        signals: this.signals,
        secrets: this.tunnelSecrets,
        bindHost: settings.bindHost,
        connectHost: settings.connectHost,
        maxChannelsPerTunnel: settings.maxChannelsPerTunnel,
        dataIdleTimeoutMs: settings.dataIdleTimeoutMs,
        connect: this.bastionConnectOptions(),
        backoff: settings.reconnect,
        keyProbeIntervalMs: Math.max(1_000, settings.heartbeatIntervalMs),
        drainMaxMs: settings.rotationDrainMaxMs,
        meter: this.meter,
        now,
      },
    });
  }

  /** The control endpoint's URL (`GET /metrics` is there), once started. */
  get controlEndpoint(): string | undefined {
    return this.controlUrl;
  }

  /** The SSH endpoint's bound port (differs from the setting when that is 0). */
  get sshPort(): number {
    return this.boundSshPort;
  }

  get connectionCount(): number {
    return this.server?.connectionCount ?? 0;
  }

  /** The SSH endpoint's admission tallies (unauthenticated connections, drops by reason). */
  get admissionStats(): AdmissionStats | undefined {
    return this.server?.admissionStats();
  }

  /** Logged-in sessions of `tunnelId` on this gateway that count against MAX_SESSIONS_PER_TUNNEL. */
  sessionCount(tunnelId: string): number {
    return this.server?.sessionCount(tunnelId) ?? 0;
  }

  get reverseTunnelCount(): number {
    return this.registry.size;
  }

  /**
   * Healthy while it serves. Not tied to storage: when the table is down, every worker's heartbeat
   * fails alike, and replacing the workers would drop every tunnel that still carries bytes.
   */
  get healthy(): boolean {
    return this.isServing;
  }

  /**
   * Whether a platform connection to tunnel port `port` is served here: a reverse tunnel's listener
   * (carried here or relayed to the gateway that carries it) or a standard tunnel this worker holds.
   */
  listensOn(port: number): boolean {
    return this.isServing && (this.registry.listensOn(port) || this.pool.listensOn(port));
  }

  /** Tunnels whose state waits to be written (the table is unavailable, or slow). */
  get stateBacklog(): number {
    return this.stateWriter.backlog;
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
        admission: settings.admission,
        maxSessionsPerTunnel: settings.maxSessionsPerTunnel,
        tunnelCache: settings.loginCache,
        loginReadTimeoutMs: LOGIN_READ_TIMEOUT_MS,
      },
      onLogin: (tunnel, keyFingerprint) => this.onLogin(tunnel, keyFingerprint),
      signals: this.signals,
      logins: this.metrics,
    });
    const controlToken = await ensureControlToken(this.deps.secrets);
    this.controlToken = controlToken;
    this.registry.useRelay(new PeerRelay({ token: controlToken, timeoutMs: RELAY_TIMEOUT_MS }));
    this.control = new ControlServer({
      host: settings.connectHost,
      port: settings.controlPort,
      token: controlToken,
      logger: this.logger,
      relay: (id, origin) => this.registry.openLocal(id, origin),
      relayIdleTimeoutMs: settings.dataIdleTimeoutMs,
      testTunnel: async (id) => {
        const result = await diagnoseTunnel(id, {
          store: this.deps.store,
          secrets: this.tunnelSecrets,
          registry: this.registry,
          connect: this.bastionConnectOptions(),
          workerId: this.workerId,
          probeTimeoutMs: PROBE_TIMEOUT_MS,
          logger: this.logger,
        });
        // What the test just reached, the tunnel can reach: one waiting out its backoff connects now.
        if (result?.ok) this.pool.reconnectNow(id);
        return result;
      },
      reconnectTunnel: (id) => this.pool.reconnectNow(id),
      pollPool: () => this.pool.requestPoll(),
      metrics: this.metrics,
      ...(this.deps.adminTokenHash ? { adminTokenHash: this.deps.adminTokenHash } : {}),
    });
    this.controlUrl = await this.control.listen();
    this.logger.info('control endpoint listening', { url: this.controlUrl });
    // Beat first: a login right after listen() must find its owner alive, not `worker_lost`.
    await this.beat();
    this.boundSshPort = await this.server.listen();
    this.logger.info('ssh endpoint listening', { host: settings.sshHost, port: this.boundSshPort });
    this.pool.start();
    this.detachMetrics = this.metrics.addSource(() => this.figures());
    this.isServing = true;
    this.scheduleBeat(settings.heartbeatIntervalMs);
  }

  /**
   * The next heartbeat in `delayMs`. Beats keep their rate whatever a slow table does to each
   * (the next is due an interval after the last began, not after it ended); a failed one is tried
   * again soon, so the end of an outage shows at once.
   */
  private scheduleBeat(delayMs: number): void {
    this.beatTimer = setTimeout(() => {
      const began = Date.now();
      this.beating = this.beat().then((ok) => {
        if (!this.isServing) return;
        const interval = this.deps.settings.heartbeatIntervalMs;
        const next = ok ? interval : Math.min(interval, BEAT_RETRY_MS);
        this.scheduleBeat(Math.max(0, began + next - Date.now()));
      });
    }, delayMs);
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
   * A clean shutdown hands every tunnel over: the endpoint and every session close with their
   * state written as a restart (not an outage, and no page within the grace), the standard leases
   * are released for others to take at once, and a last heartbeat says this worker stopped, so
   * nobody waits for it to go stale. Writes that the table does not take in time are left behind.
   */
  async stop(): Promise<void> {
    this.isServing = false;
    clearTimeout(this.beatTimer);
    this.detachMetrics?.();
    await Promise.race([this.beating, delay(STOP_WRITES_MS)]);
    // No new logins here; peers' relays fail fast from now on and go to the other gateways.
    this.server?.stopAccepting();
    // Not awaited here: its close waits for the relays it carries, which end with the drain.
    const controlClosed = this.control?.close() ?? Promise.resolve();
    this.registry.handOver();
    // Sessions another gateway can stand in for finish what they carry, then close: their
    // customers reconnect elsewhere while the tunnel's listeners here relay to the others.
    const drainDeadline = Date.now() + this.deps.settings.shutdownDrainMs;
    await Promise.all([this.registry.drain(drainDeadline), this.pool.stop(drainDeadline)]);
    await this.server?.close();
    await this.registry.closeListeners();
    // A timer that holds the process open: with everything else closed, a promise alone would not,
    // and the process would end before its last writes.
    let held: NodeJS.Timeout | undefined;
    await Promise.race([
      controlClosed,
      new Promise((resolve) => (held = setTimeout(resolve, CONTROL_CLOSE_MS))),
    ]);
    clearTimeout(held);
    this.control?.destroyRelayed();
    const deadline = Date.now() + STOP_WRITES_MS;
    await Promise.all([this.stateWriter.flush(deadline), this.signalWriter.flush(deadline)]);
    if (this.stateWriter.backlog > 0) {
      this.logger.warn('tunnel states not written before shutdown', { tunnels: this.stateWriter.backlog });
    }
    if (this.signalWriter.backlog > 0) {
      this.logger.warn('tunnel signals not written before shutdown', { tunnels: this.signalWriter.backlog });
    }
    // Stopped: it carries nothing any more (and peers relay to no stopped worker).
    const stopped = this.heartbeat(this.now().toISOString(), []);
    stopped.stoppedAt = stopped.lastBeatAt;
    const written = await Promise.race([
      this.deps.store.putHeartbeat(stopped, HEARTBEAT_TTL_SECONDS).then(
        () => true,
        (err: unknown) => this.logger.warn('last heartbeat not written', { err }),
      ),
      delay(deadline - Date.now()),
    ]);
    if (written !== true)
      this.logger.warn('stopped without its last heartbeat; others wait for it to go stale');
  }

  /** This gateway's levels for a metrics scrape. */
  private figures(): GatewayFigures {
    const server = this.server;
    return {
      tunnels: { reverse: this.registry.size, standard: this.pool.size },
      customerSessions: server ? server.connectionCount - server.unauthenticatedCount : 0,
      channelsOpen: this.meter.openConnections(),
      bytes: this.meter.byteTotals(),
    };
  }

  /**
   * Writes the per-tunnel traffic when it changed since the last write: one write per heartbeat at
   * most, and none while nothing moves (whatever the number of tunnels).
   */
  private async writeTraffic(at: string): Promise<void> {
    const tunnels = this.meter.perTunnel(TRAFFIC_MAX_TUNNELS);
    const serialized = JSON.stringify(tunnels);
    if (serialized === this.writtenTraffic) return;
    try {
      await this.deps.store.putTraffic(
        { workerId: this.workerId, reportedAt: at, tunnels },
        HEARTBEAT_TTL_SECONDS,
      );
      this.writtenTraffic = serialized;
    } catch (err) {
      this.logger.warn('tunnel traffic write failed', { err });
    }
  }

  private heartbeat(at: string, carries: string[]): WorkerHeartbeat {
    return {
      workerId: this.workerId,
      lastBeatAt: at,
      startedAt: this.startedAt,
      address: this.deps.settings.connectHost,
      version: GATEWAY_VERSION,
      controlUrl: this.controlUrl,
      counts: { reverse: this.registry.size, standard: this.pool.size },
      carries,
    };
  }

  /**
   * Writes the heartbeat; false when that failed. Then reconciles the sessions held, in the
   * background (one reconciliation at a time), so a slow read never delays the next beat.
   */
  private async beat(): Promise<boolean> {
    const at = this.now().toISOString();
    try {
      // The shards first: the heartbeat names only revisions that are written.
      const carries = await this.carriesWriter.write(this.registry.carriedShards);
      await this.deps.store.putHeartbeat(this.heartbeat(at, carries), HEARTBEAT_TTL_SECONDS);
    } catch (err) {
      this.logger.error('heartbeat write failed', { err });
      return false;
    }
    const silentMs = this.lastBeatWrittenAt === undefined ? 0 : Date.parse(at) - this.lastBeatWrittenAt;
    this.lastBeatWrittenAt = Date.parse(at);
    if (silentMs > workerGoneAfterMs(this.deps.settings)) {
      const states = this.stateWriter.rewriteUps();
      this.logger.warn('heartbeat written again after a silence; tunnel states recorded again', {
        silentMs,
        states,
      });
    }
    await this.writeTraffic(at);
    if (!this.isRechecking) {
      this.isRechecking = true;
      this.recheckChanged()
        .catch((err) => this.logger.warn('tunnel reconciliation failed', { err }))
        .finally(() => {
          this.isRechecking = false;
        });
    }
    if (!this.isSyncingPeers) {
      this.isSyncingPeers = true;
      this.syncPeers()
        .catch((err) => this.logger.warn('peer tunnels not read', { err }))
        .finally(() => {
          this.isSyncingPeers = false;
        });
    }
    return true;
  }

  /**
   * From now on, listen on the ports of the tunnels other gateways carry and relay to them. A
   * process that starts more after its gateway (`npm start`: the API, the sweeper) calls it once
   * that is done: a port shared with busy start-up code would hold connections queued meanwhile.
   */
  startRelaying(): void {
    this.isRelaying = true;
  }

  /** Asks the other live gateways to take the standard tunnels this one offers now. */
  private async nudgePeers(): Promise<number> {
    const token = this.controlToken;
    if (!token) return 0;
    const workers = await this.deps.store.listWorkers();
    const observingSince = this.deps.observingSince?.();
    const view = observingSince === undefined ? { now: this.now() } : { now: this.now(), observingSince };
    const peers = livePeers(workers, this.workerId, view, this.deps.settings);
    const taken = await nudgePeers(peers, token, NUDGE_TIMEOUT_MS);
    this.logger.info('peers asked to take offered standard tunnels', {
      peers: peers.length,
      answered: taken,
    });
    return taken;
  }

  /** Listens on the ports of the tunnels other gateways carry, to relay to them (fargate/peers/). */
  private async syncPeers(): Promise<void> {
    if (!this.isRelaying) return;
    const workers = await this.deps.store.listWorkers();
    if (!this.isServing) return;
    const observingSince = this.deps.observingSince?.();
    const view = observingSince === undefined ? { now: this.now() } : { now: this.now(), observingSince };
    const peers = livePeerBeats(workers, this.workerId, view, this.deps.settings);
    const carried = await this.peerCarries.carriedBy(peers);
    if (!this.isServing) return;
    await this.registry.syncPeers(peerHoldings(peers, carried));
  }

  /**
   * Rereads the carried tunnels the table's change log names (all of them when it cannot tell), so
   * the cost of keeping sessions in line with their records follows changes, not the tunnel count.
   */
  private async recheckChanged(): Promise<void> {
    const polled = await this.changes.poll();
    if (polled.everything) return this.recheck(this.registry.carriedIds());
    this.server?.confirmUnchanged(polled.completeUntil, polled.changes);
    await this.recheck(polled.tunnelIds.filter((id) => this.registry.carries(id)));
  }

  /** Closes sessions whose tunnel was deleted, disabled, or whose login key is no longer valid. */
  private async recheck(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const { found, unreadable } = await this.deps.store.getTunnelsByIds(ids);
    for (const item of unreadable) {
      // Not deleted, only unreadable: the session it serves goes on.
      this.logger.error('stored tunnel unreadable; its session is left as it is', {
        tunnelId: item.id,
        ...item,
      });
    }
    const unknown = new Set(unreadable.map((item) => item.id));
    // The login cache learns what storage said of the tunnels held here (unreadable ones aside).
    this.server?.sawTunnels(
      ids.filter((id) => !unknown.has(id)),
      found,
    );
    for (const id of ids) {
      const sessions = this.registry.sessionsOf(id);
      if (sessions.length === 0 || unknown.has(id)) continue;
      const record = found.get(id);
      if (!record) this.registry.closeTunnel(id, 'tunnel deleted');
      else if (!record.enabled) this.registry.closeTunnel(id, 'tunnel disabled');
      else {
        for (const session of sessions) {
          if (!acceptedFingerprints(record, session.connectorId).includes(session.keyFingerprint)) {
            this.registry.closeSession(session, 'login key was rotated away or its connector removed');
          }
        }
      }
    }
  }

  /** A login with the tunnel's newest key completes a rotation: the previous key is retired. */
  private onLogin(tunnel: TunnelRecord, keyFingerprint: string): void {
    if (!tunnel.previousPublicKey || keyFingerprint !== tunnel.publicKeyFingerprint) return;
    this.deps.store
      .retirePreviousKey(tunnel.id, tunnel.previousPublicKey)
      .then(() =>
        this.logger.info('previous tunnel key retired', {
          tunnelId: tunnel.id,
          retiredKey: previousFingerprint(tunnel),
          currentKey: keyFingerprint,
        }),
      )
      .catch((err) => this.logger.warn('previous tunnel key not retired', { tunnelId: tunnel.id, err }));
  }
}

/** The fingerprints a session of the connector may hold: none once the connector is removed. */
function acceptedFingerprints(record: TunnelRecord, connectorId: string): string[] {
  if (connectorId !== PRIMARY_CONNECTOR_ID) {
    return (record.connectors ?? []).filter((c) => c.id === connectorId).map((c) => c.publicKeyFingerprint);
  }
  if (record.isPrimaryConnectorRemoved) return [];
  const previous = previousFingerprint(record);
  return previous ? [record.publicKeyFingerprint, previous] : [record.publicKeyFingerprint];
}

/** The fingerprint of the key a rotation is replacing; undefined when none (an unparseable one accepts nothing). */
function previousFingerprint(record: TunnelRecord): string | undefined {
  if (!record.previousPublicKey) return undefined;
  try {
    return parsePublicKey(record.previousPublicKey, 'previousPublicKey').fingerprint;
  } catch {
    return undefined;
  }
}

/** Resolves after `ms` (at once when not positive), without holding the process open. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)).unref());
}

/**
 * Serves one standard tunnel on this worker: its listener, one SSH session to the bastion that
 * carries every new connection, reconnects with backoff (dropped on request), state written on
 * changes, and a zero-downtime key rotation (keep serving on the old key, switch once the new one
 * logs in; the old session keeps the connections it carries until they end: session-drain.ts).
 */

import { randomBytes } from 'node:crypto';
import { Backoff, type BackoffSettings } from '../../shared/backoff';
import type { ReconnectOutcome } from '../../shared/control';
import { OverloadedError } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import type { StatusError } from '../../shared/schemas';
import { connectionLost, handedOver, hostPort } from '../../shared/status-errors';
import type { GatewayStore } from '../../shared/store/gateway-store';
import type { TunnelRecord, TunnelSecret } from '../../shared/tunnel';
import type { GatewaySignals } from '../signals/gateway-signals';
import { refusedByBastion, reportingOutcomes } from '../signals/service-outcome';
import type { StateWriter } from '../state-writer';
import type { TrafficMeter } from '../traffic-meter';
import { type ChannelOpener, TunnelListener } from '../tunnel-listener';
import {
  type BastionConnection,
  type BastionConnectOptions,
  connectToBastion,
  TunnelFailure,
} from './bastion-connection';
import { SessionDrain } from './session-drain';
import type { TunnelSecrets } from './tunnel-secrets';

export interface StandardRunnerDeps {
  workerId: string;
  logger: Logger;
  stateWriter: StateWriter;
  /** Told how real connections through the tunnel went (the `service_unreachable` warning). */
  signals?: Pick<GatewaySignals, 'serviceOutcome'>;
  store: GatewayStore;
  /** The tunnel's credentials, through the gateway's secret cache. */
  secrets: TunnelSecrets;
  bindHost: string;
  connectHost: string;
  maxChannelsPerTunnel: number;
  /** `DATA_IDLE_TIMEOUT_MS`: a connection through a tunnel quiet both ways this long is closed. */
  dataIdleTimeoutMs: number;
  connect: BastionConnectOptions;
  backoff: BackoffSettings;
  /** While serving on a key being rotated away, how often the new key is tried. */
  keyProbeIntervalMs: number;
  /**
   * `ROTATION_DRAIN_MAX_MS`: the longest a session a rotation replaced keeps carrying the
   * connections it holds (it closes as soon as the last one ends).
   */
  drainMaxMs: number;
  /** Counts connections and bytes per tunnel. */
  meter?: TrafficMeter;
  now: () => Date;
}

/** How long stop() waits for the connect loop to notice. */
const STOP_WAIT_MS = 2_000;
/** A takeover's platform connections wait this long for its first session (then fail). */
const TAKEOVER_HOLD_MS = 10_000;

/**
 * Where and as whom the tunnel connects: what a config change must reconnect for. The host key pin
 * is apart (see `update`): pinning the key of the session that just came up must not end it.
 */
const connectionShape = (t: TunnelRecord) =>
  JSON.stringify([t.ssh?.host, t.ssh?.port, t.ssh?.user, t.service]);

export class StandardTunnelRunner {
  private tunnel: TunnelRecord;
  private running = true;
  private readonly listener: TunnelListener;
  private readonly backoff: Backoff;
  /** Start of this worker's tenure: orders our state writes against other owners'. */
  private readonly epoch: string;
  private lastWritten = '';
  /** The connection whose `up` we wrote last. */
  private connId = '';
  private wake: (() => void) | undefined;
  /** Waiting out the backoff before the next attempt (what `reconnectNow` cuts short). */
  private isWaitingToRetry = false;
  /** The session the latest key switch replaced, while it carries its connections to their end. */
  private draining: SessionDrain | undefined;
  private reconnectRequested = false;
  /** A rotation changed the keys: the live session stays, the new key gets tried. */
  private keysChanged = false;
  /** Host key the bastion presented to this runner's latest session (kept after it ends). */
  private lastHostKey: string | undefined;
  private loop: Promise<void> = Promise.resolve();
  private readonly log: Logger;

  /**
   * `takeover`: the connection of the worker this one takes the tunnel over from, which serves until
   * this one is up. Connections that reach this listener before then wait for the first session, and
   * its `up` continues that connection (no flap in the history).
   */
  constructor(
    tunnel: TunnelRecord,
    private readonly deps: StandardRunnerDeps,
    private takeover?: string,
  ) {
    this.tunnel = tunnel;
    this.epoch = deps.now().toISOString();
    this.backoff = new Backoff(deps.backoff);
    this.log = deps.logger.child({ tunnelId: tunnel.id });
    this.listener = new TunnelListener({
      tunnelId: tunnel.id,
      host: deps.bindHost,
      port: tunnel.port,
      maxChannels: deps.maxChannelsPerTunnel,
      idleTimeoutMs: deps.dataIdleTimeoutMs,
      logger: deps.logger,
      ...(takeover ? { holdForFirstOpenerMs: TAKEOVER_HOLD_MS } : {}),
      ...(deps.meter ? { traffic: { meter: deps.meter, type: 'standard' as const } } : {}),
    });
  }

  get id(): string {
    return this.tunnel.id;
  }

  /** The tunnel port its listener is bound to (from `start` until `stop`). */
  get port(): number {
    return this.tunnel.port;
  }

  /** Started as a takeover whose first session is not up yet. */
  get isTakingOver(): boolean {
    return this.takeover !== undefined;
  }

  /** The connection serving now, if the tunnel is up here. */
  get servingConnId(): string | undefined {
    return this.lastWritten.startsWith('up:') ? this.connId : undefined;
  }

  /** Binds the listener (rejects if the port is taken) and starts connecting. */
  async start(): Promise<void> {
    await this.listener.listen();
    this.loop = this.run().catch((err) => this.log.error('standard tunnel runner crashed', { err }));
  }

  /** Applies a changed configuration; reconnects when where or how it connects changed. */
  update(next: TunnelRecord): void {
    const pin = next.ssh?.hostKeyFingerprint;
    // A new pin matters unless the bastion presented that key to our latest session: our own pin
    // after the first success is exactly that, also when the poll brings it after that session
    // ended. A customer's correction after a mismatch retries at once.
    const repinned =
      pin !== undefined && pin !== this.tunnel.ssh?.hostKeyFingerprint && pin !== this.lastHostKey;
    const reconnect = connectionShape(next) !== connectionShape(this.tunnel) || repinned;
    const rotated = next.publicKeyFingerprint !== this.tunnel.publicKeyFingerprint;
    this.tunnel = next;
    if (reconnect) {
      this.log.info('standard tunnel configuration changed; reconnecting');
      this.reconnectRequested = true;
      this.wake?.();
    } else if (rotated) {
      this.keysChanged = true;
      this.wake?.();
    }
  }

  /**
   * Stops serving: closes the session and the listener. Writes no state (the next owner will),
   * except on `handOver` (a clean shutdown) while up: then the tunnel is recorded as handed over,
   * a restart rather than an outage (the write only lands while no newer owner has written).
   */
  async stop(handOver = false): Promise<void> {
    const wasUp = this.lastWritten.startsWith('up:');
    this.running = false;
    this.wake?.();
    // A connect in flight can take BASTION_READY_TIMEOUT_MS; shutdown does not wait for it (once
    // stopped, the runner writes nothing and closes what it gets).
    await Promise.race([this.loop, new Promise((resolve) => setTimeout(resolve, STOP_WAIT_MS).unref())]);
    this.draining?.close('tunnel stopped on this worker');
    await this.listener.close();
    this.deps.secrets.forget(this.tunnel.id);
    if (handOver && wasUp) {
      const at = this.deps.now().toISOString();
      this.deps.stateWriter.write(this.tunnel.id, {
        state: 'down',
        since: at,
        lastSeenAt: at,
        owner: this.deps.workerId,
        connId: this.connId,
        connectedAt: this.epoch,
        error: handedOver(targetOf(this.tunnel)),
        cause: 'restart',
      });
    }
  }

  /**
   * Makes way for the worker that took the tunnel over: stops accepting here (what the kernel still
   * queued moves to its listener on the shared port), lets the open connections finish until
   * `deadline` (epoch ms), then stops, writing nothing (the new owner's state stands).
   */
  async retire(deadline: number): Promise<void> {
    this.listener.stopAccepting();
    const opener = this.listener.currentOpener;
    if (opener) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.listener.whenDrained(opener),
        new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
    }
    await this.stop(false);
  }

  /**
   * Drops the backoff (`POST /reconnect`, a passing test): a tunnel waiting to retry connects now,
   * its next delays starting over from the first.
   */
  reconnectNow(): ReconnectOutcome {
    if (this.isWaitingToRetry) {
      this.backoff.reset();
      this.log.info('standard tunnel reconnecting now: backoff dropped');
      this.wake?.();
      return 'reconnecting';
    }
    return this.lastWritten.startsWith('up:') ? 'up' : 'connecting';
  }

  private async run(): Promise<void> {
    while (this.running) {
      this.reconnectRequested = false;
      const tunnel = this.tunnel;
      let conn: BastionConnection;
      let secret: TunnelSecret;
      try {
        ({ conn, secret } = await this.connect(tunnel));
        if (!this.running) {
          // Stopped while connecting: the tunnel may have another owner now; write nothing.
          conn.close();
          return;
        }
      } catch (err) {
        if (!this.running) return; // stopped meanwhile: the next owner writes the state
        if (err instanceof OverloadedError) {
          // This worker's key crypto pool is busy, not the bastion failing: no state, try again later.
          this.log.warn('standard tunnel connect deferred: key crypto busy', {
            retryAfterSeconds: err.retryAfterSeconds,
          });
          if (!this.reconnectRequested) await this.retryLater();
          continue;
        }
        const status =
          err instanceof TunnelFailure
            ? err.status
            : connectionLost(targetOf(tunnel), 'internal error; retrying');
        if (!(err instanceof TunnelFailure))
          this.log.error('standard tunnel connect failed internally', { err });
        this.takeover = undefined; // what it took over is recorded as gone with this down
        this.writeDown(status);
        if (!this.reconnectRequested) await this.retryLater();
        continue;
      }
      await this.serve(tunnel, secret, conn);
    }
  }

  /**
   * Connects with the credentials as cached. A refusal of cached ones reads them again first: a
   * rotation's new key may be in the store before this worker has seen the tunnel's new record.
   */
  private async connect(tunnel: TunnelRecord): Promise<{ conn: BastionConnection; secret: TunnelSecret }> {
    const read = await this.deps.secrets.read(tunnel);
    try {
      return { conn: await this.connectAndProbe(tunnel, read.secret), secret: read.secret };
    } catch (err) {
      if (!(err instanceof TunnelFailure) || err.status.code !== 'auth_failed') throw err;
      const fresher = await this.deps.secrets.recheck(tunnel, read, this.log);
      if (!fresher || !this.running) throw err;
      this.log.info('standard tunnel credentials changed since cached; connecting with the stored ones');
      return { conn: await this.connectAndProbe(tunnel, fresher.secret), secret: fresher.secret };
    }
  }

  private async connectAndProbe(tunnel: TunnelRecord, secret: TunnelSecret): Promise<BastionConnection> {
    if (!tunnel.ssh) throw new Error('standard tunnel without ssh settings');
    const conn = await connectToBastion(tunnel.ssh, secret, this.deps.connect);
    try {
      // A bastion that lets us in but may not forward to the service is not a working tunnel; one
      // that may but finds the service down is: the state follows the session, the service's
      // reachability is a warning (as for a service that dies later under an up tunnel).
      const probe = await conn.forward(tunnel.service, { ip: '127.0.0.1', port: 0 });
      probe.destroy();
      this.deps.signals?.serviceOutcome(tunnel.id, { reachable: true });
    } catch (err) {
      const unreachable = refusedByBastion(err);
      if (unreachable !== undefined) {
        this.deps.signals?.serviceOutcome(tunnel.id, { reachable: false, message: unreachable });
        return conn;
      }
      conn.close();
      throw err;
    }
    return conn;
  }

  /** Carries connections over `conn` until it ends, a reconnect is asked for, or we stop. */
  private async serve(tunnel: TunnelRecord, secret: TunnelSecret, first: BastionConnection): Promise<void> {
    let conn = first;
    let keys = secret;
    const upSince = Date.now();
    this.afterConnect(tunnel, keys, conn, this.takeover);
    this.takeover = undefined;

    // While the session runs on an older key, try the newest one now and then; switch when it works.
    let probeTimer: NodeJS.Timeout | undefined;
    const armKeyProbe = () => {
      clearInterval(probeTimer);
      if (keys.keys.length < 2 || conn.authenticatedWith === keys.keys[0]?.fingerprint) return;
      this.log.info('serving on the previous key; trying the new one periodically', {
        key: conn.authenticatedWith,
        newKey: keys.keys[0]?.fingerprint,
      });
      let probing = false;
      probeTimer = setInterval(() => {
        if (probing) return;
        probing = true;
        void this.tryNewKey(this.tunnel, keys).then((next) => {
          probing = false;
          if (!next) return;
          if (!this.running || this.reconnectRequested) {
            next.close();
            return;
          }
          clearInterval(probeTimer);
          const old = conn;
          const oldOpener = this.listener.currentOpener;
          conn = next;
          this.afterConnect(this.tunnel, keys, conn, this.connId);
          this.drain(old, oldOpener, conn.authenticatedWith);
          this.wake?.(); // wait on the new session's end from now on
        });
      }, this.deps.keyProbeIntervalMs);
    };
    armKeyProbe();

    let ended: StatusError | undefined;
    while (this.running && !this.reconnectRequested && !ended) {
      const current = conn;
      const outcome = await Promise.race([
        current.closed,
        new Promise<undefined>((resolve) => {
          this.wake = () => resolve(undefined);
        }),
      ]);
      if (outcome && current === conn) ended = outcome;
      if (this.keysChanged && this.running) {
        this.keysChanged = false;
        try {
          keys = (await this.deps.secrets.read(this.tunnel)).secret;
          armKeyProbe();
        } catch (err) {
          this.log.warn('rotated keys could not be read', { err });
        }
      }
    }
    clearInterval(probeTimer);
    this.listener.setOpener(undefined);
    conn.close();
    // Another bastion, user or service: what the old session carries goes as the live session's does.
    if (this.reconnectRequested) this.draining?.close('tunnel configuration changed');
    if (!this.running) return;
    if (ended) {
      this.log.info('standard tunnel session ended', { code: ended.code, reason: ended.message });
      this.writeDown(ended);
      this.backoff.connectionEnded(Date.now() - upSince);
      await this.retryLater();
    }
  }

  /** `continues`: the connection this one replaces without a gap (a key switch), so no flap is recorded. */
  private afterConnect(
    tunnel: TunnelRecord,
    secret: TunnelSecret,
    conn: BastionConnection,
    continues?: string,
  ): void {
    this.listener.setOpener(
      reportingOutcomes(
        (origin) => conn.forward(this.tunnel.service, origin),
        refusedByBastion,
        (outcome) => this.deps.signals?.serviceOutcome(tunnel.id, outcome),
      ),
    );
    this.lastHostKey = conn.hostKeyFingerprint;
    const at = this.deps.now().toISOString();
    this.lastWritten = `up:${conn.authenticatedWith}`;
    this.deps.stateWriter.write(tunnel.id, {
      state: 'up',
      since: at,
      lastSeenAt: at,
      owner: this.deps.workerId,
      connId: this.newConnId(),
      ...(continues ? { continues } : {}),
      connectedAt: this.epoch,
      connectHost: this.deps.connectHost,
      keyFingerprint: conn.authenticatedWith,
    });
    this.log.info('standard tunnel up', { bastion: conn.target, key: conn.authenticatedWith });
    if (!tunnel.ssh?.hostKeyFingerprint) {
      this.deps.store
        .pinHostKey(tunnel.id, conn.hostKeyFingerprint)
        .then(
          (pinned) =>
            pinned && this.log.info('bastion host key pinned', { fingerprint: conn.hostKeyFingerprint }),
        )
        .catch((err) => this.log.warn('bastion host key not pinned', { err }));
    }
    const [newest, ...older] = secret.keys;
    if (newest && older.length > 0 && conn.authenticatedWith === newest.fingerprint)
      void this.retireOldKeys(tunnel, secret);
  }

  /** Tries the rotation's new key alone; resolves with a ready session when the bastion accepts it. */
  private async tryNewKey(
    tunnel: TunnelRecord,
    secret: TunnelSecret,
  ): Promise<BastionConnection | undefined> {
    const [newest] = secret.keys;
    if (!newest || !tunnel.ssh) return undefined;
    try {
      return await this.connectAndProbe(tunnel, { keys: [newest] });
    } catch {
      return undefined; // the customer has not installed the new key yet
    }
  }

  /** The new key works: keep only it, in the secret and in the tunnel record. */
  private async retireOldKeys(tunnel: TunnelRecord, secret: TunnelSecret): Promise<void> {
    const [newest] = secret.keys;
    if (!newest) return;
    try {
      await this.deps.secrets.replace(tunnel.id, { ...secret, keys: [newest] });
      if (tunnel.previousPublicKey)
        await this.deps.store.retirePreviousKey(tunnel.id, tunnel.previousPublicKey);
      for (const retired of secret.keys.slice(1)) {
        this.log.info('previous tunnel key retired', {
          retiredKey: retired.fingerprint,
          currentKey: newest.fingerprint,
        });
      }
    } catch (err) {
      this.log.warn('previous tunnel key not retired', { err });
    }
  }

  /**
   * `old` goes on carrying the connections it holds (those `opener` carried) and closes once they
   * end. At most one session drains: a newer switch ends the previous drain, cutting what it still
   * carries, so a tunnel holds two bastion sessions at most.
   */
  private drain(old: BastionConnection, opener: ChannelOpener | undefined, newKey: string): void {
    this.draining?.close('replaced by a newer rotation');
    const drain = new SessionDrain(old, {
      drained: opener ? this.listener.whenDrained(opener) : Promise.resolve(),
      connections: () => (opener ? this.listener.connectionsVia(opener) : 0),
      maxMs: this.deps.drainMaxMs,
      replacedBy: newKey,
      logger: this.log,
    });
    this.draining = drain;
    void drain.done.then(() => {
      if (this.draining === drain) this.draining = undefined;
    });
  }

  /** Down states are written only when the reason changes: retries do not grow writes. */
  private writeDown(error: StatusError): void {
    const key = `down:${error.code}`;
    if (this.lastWritten === key) return;
    this.lastWritten = key;
    const at = this.deps.now().toISOString();
    this.log.info('standard tunnel down', { code: error.code, reason: error.message });
    this.deps.stateWriter.write(this.tunnel.id, {
      state: 'down',
      since: at,
      owner: this.deps.workerId,
      connectedAt: this.epoch,
      error,
    });
  }

  private newConnId(): string {
    this.connId = `c_${randomBytes(8).toString('hex')}`;
    return this.connId;
  }

  private retryLater(): Promise<void> {
    const delayMs = this.backoff.next();
    this.log.debug('standard tunnel reconnect scheduled', { delayMs });
    return this.sleep(delayMs);
  }

  private sleep(ms: number): Promise<void> {
    this.isWaitingToRetry = true;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.isWaitingToRetry = false;
    });
  }
}

function targetOf(tunnel: TunnelRecord): string {
  return tunnel.ssh ? hostPort(tunnel.ssh.host, tunnel.ssh.port) : 'the bastion';
}

/**
 * Which SSH connections carry each reverse tunnel on this worker, and the tunnel's listener: one
 * session per connector (connectors.ts). A newer login of the same connector takes its slot over in
 * place (no refused window); the older connection drains briefly and is closed. Logins of other
 * connectors add to the tunnel. New platform connections are spread over the connectors' sessions,
 * and tried on the next one when a session refuses the channel or goes away before it opens.
 * State is written per connector on every transition.
 */
import type { TunnelStateItem } from '../../shared/gateway-items';
import type { Logger } from '../../shared/logger';
import type { StatusError } from '../../shared/schemas';
import { gatewayRestarted } from '../../shared/status-errors';
import type { TunnelRecord } from '../../shared/tunnel';
import { CarriedShards } from '../../shared/worker-carries';
import type { PeerHolding, PeerRef } from '../peers/peer-directory';
import type { PeerRelay } from '../peers/peer-relay';
import type { SshChannel } from '../pipe';
import type { GatewaySignals } from '../signals/gateway-signals';
import { refusedByCustomerClient, reportingOutcomes } from '../signals/service-outcome';
import type { StateWriter } from '../state-writer';
import type { TrafficMeter } from '../traffic-meter';
import { type ChannelOpener, TunnelListener } from '../tunnel-listener';

/** One authenticated customer connection that asked for its tunnel's forward. */
export interface ForwardingSession {
  connId: string;
  tunnelId: string;
  /** The connector whose key it logged in with (connectors.ts; `primary`: the tunnel's own key). */
  connectorId: string;
  source: string;
  connectedAt: string;
  /** Fingerprint of the key it logged in with (checked again after a rotation). */
  keyFingerprint: string;
  /** The service tag its `-R` bind address carries (command-tag.ts), if any. */
  commandTag?: string;
  open: ChannelOpener;
  activeChannels(): number;
  /** A newer login of the tunnel took the listener over: this session only drains from now on. */
  takenOver(): void;
  /** Whether its SSH connection has ended (a channel it carried was lost with it). */
  isGone(): boolean;
  /** Ends the SSH connection. */
  close(): void;
}

export interface ForwardRegistryOptions {
  workerId: string;
  bindHost: string;
  /** Advertised as `connect.host` while up (this worker's address as workloads see it). */
  connectHost: string;
  maxChannelsPerTunnel: number;
  /** `DATA_IDLE_TIMEOUT_MS`: a connection through a tunnel quiet both ways this long is closed. */
  dataIdleTimeoutMs: number;
  /** How long a taken-over connection may keep finishing its open channels. */
  takeoverDrainMs: number;
  logger: Logger;
  stateWriter: StateWriter;
  /** Told of takeovers and of how platform connections through each tunnel went. */
  signals?: Pick<GatewaySignals, 'takeover' | 'serviceOutcome'>;
  /** Relays a platform connection to another gateway that carries the tunnel (fargate/peers/). */
  relay?: Pick<PeerRelay, 'open'>;
  /** Counts connections and bytes per tunnel. */
  meter?: TrafficMeter;
  now: () => Date;
}

/** How often a drain looks whether a session's connections are done. */
const DRAIN_CHECK_MS = 50;

interface Entry {
  listener: TunnelListener;
  port: number;
  /** The session holding each connector's slot on this gateway. */
  slots: Map<string, ForwardingSession>;
  /** Other gateways that carry the tunnel: tried when no session here can take a connection. */
  peers: PeerRef[];
  /** Where the next platform connection starts looking (round robin over the slots, then the peers). */
  turn: number;
  peerTurn: number;
  /** A shutdown drains this gateway's sessions: new connections go to the peers first. */
  isDraining?: boolean;
}

export class ForwardRegistry {
  private readonly entries = new Map<string, Entry>();
  /** The entries by port, for the load balancers' health checks (one per tunnel port). */
  private readonly byPort = new Map<number, Entry>();
  /**
   * The tunnels with a session here, kept as they change: the heartbeat's counts and shards cost
   * the same at 10,000 idle tunnels as at one (listing them took the event loop ~10 ms a beat).
   */
  private readonly carried = new CarriedShards();
  /** Set by a clean shutdown: sessions that end from now on were handed over, not lost. */
  private isHandingOver = false;
  /** Listens in progress, so two logins racing for one tunnel do not both bind the port. */
  private readonly opening = new Map<string, Promise<Entry | undefined>>();
  /** Whether what carries each open channel is gone: its session's end (first-byte-retry.ts). */
  private readonly carriers = new WeakMap<SshChannel, () => boolean>();

  constructor(private readonly options: ForwardRegistryOptions) {}

  /** From now on, connections no session here can take are relayed to the peers through `relay`. */
  useRelay(relay: Pick<PeerRelay, 'open'>): void {
    this.options.relay = relay;
  }

  /** Tunnels carried through sessions of this gateway. */
  get size(): number {
    return this.carried.size;
  }

  /** Whether a session of this gateway carries the tunnel. */
  carries(tunnelId: string): boolean {
    return this.carried.has(tunnelId);
  }

  /** The tunnels carried through sessions of this gateway. */
  carriedIds(): string[] {
    return [...this.entries].flatMap(([id, e]) => (e.slots.size > 0 ? [id] : []));
  }

  /** Tunnels carried through sessions of this gateway, with their ports, in shards (told to the peers). */
  get carriedShards(): Pick<CarriedShards, 'shard'> {
    return this.carried;
  }

  /** Whether a tunnel listener here accepts on `port` (carried here or relayed; not while draining). */
  listensOn(port: number): boolean {
    const entry = this.byPort.get(port);
    return entry !== undefined && !entry.isDraining;
  }

  /** Tunnels this gateway only relays (no session of its own carries them). */
  get relayCount(): number {
    return [...this.entries.values()].filter((e) => e.slots.size === 0).length;
  }

  /**
   * What the other gateways carry now (peer-directory.ts): this gateway listens on those tunnels'
   * ports too and relays to them; a listener nobody carries any more is closed.
   */
  async syncPeers(holdings: ReadonlyMap<string, PeerHolding>): Promise<void> {
    for (const [tunnelId, holding] of holdings) {
      const pending = this.opening.get(tunnelId);
      if (pending) await pending;
      const entry = this.entries.get(tunnelId);
      if (entry) {
        if (!samePeers(entry.peers, holding.peers)) {
          this.options.logger.info('tunnel peers changed', {
            tunnelId,
            peers: holding.peers.map((p) => p.workerId),
          });
        }
        entry.peers = holding.peers;
        continue;
      }
      const opening = this.openListener(tunnelId, holding.port, undefined);
      this.opening.set(tunnelId, opening);
      try {
        const opened = await opening;
        if (!opened) continue;
        opened.peers = holding.peers;
        this.addEntry(tunnelId, opened);
        this.options.logger.info('tunnel relay listening', {
          tunnelId,
          port: holding.port,
          peers: holding.peers.map((p) => p.workerId),
        });
      } finally {
        this.opening.delete(tunnelId);
      }
    }
    for (const [tunnelId, entry] of this.entries) {
      if (holdings.has(tunnelId)) continue;
      if (entry.peers.length > 0) {
        this.options.logger.info('tunnel peers changed', { tunnelId, peers: [] });
        entry.peers = [];
      }
      if (entry.slots.size > 0) continue;
      this.removeEntry(tunnelId, entry);
      await entry.listener.close();
      this.options.logger.info('tunnel relay closed: no gateway carries the tunnel', { tunnelId });
    }
  }

  /** A channel through this gateway's own sessions of the tunnel (a peer's relayed connection). */
  openLocal(tunnelId: string, origin: { ip: string; port: number }): Promise<SshChannel> {
    const entry = this.entries.get(tunnelId);
    if (!entry || entry.slots.size === 0)
      return Promise.reject(new Error('no session here carries the tunnel'));
    return this.openThrough(entry, origin, { isLocalOnly: true });
  }

  /** A session carrying the tunnel (the first connector's, when several do). */
  sessionOf(tunnelId: string): ForwardingSession | undefined {
    return this.sessionsOf(tunnelId)[0];
  }

  /** Every session carrying the tunnel, one per connector. */
  sessionsOf(tunnelId: string): ForwardingSession[] {
    return [...(this.entries.get(tunnelId)?.slots.values() ?? [])];
  }

  /** Gives `session` its connector's slot of the tunnel's listener; false when the port cannot be bound. */
  async attach(session: ForwardingSession, tunnel: TunnelRecord): Promise<boolean> {
    const pending = this.opening.get(tunnel.id);
    if (pending) await pending;
    const existing = this.entries.get(tunnel.id);
    if (existing) {
      const holder = existing.slots.get(session.connectorId);
      if (existing.slots.size === 0)
        this.options.logger.info('relayed tunnel now carried here too', { tunnelId: tunnel.id });
      if (holder === session) return true;
      if (holder) this.takeOver(existing, holder, session);
      else {
        existing.slots.set(session.connectorId, session);
        this.carried.set(tunnel.id, existing.port);
        this.writeUp(session);
      }
      return true;
    }
    const opening = this.openListener(tunnel.id, tunnel.port, session);
    this.opening.set(tunnel.id, opening);
    try {
      const entry = await opening;
      if (!entry) return false;
      // A login that arrived while we were binding may already be waiting: the newest wins.
      this.addEntry(tunnel.id, entry);
      this.carried.set(tunnel.id, entry.port);
      this.writeUp(session);
      return true;
    } finally {
      this.opening.delete(tunnel.id);
    }
  }

  /**
   * The worker is shutting down cleanly: every session it closes from now on is recorded as a
   * restart, so history and alerts tell a deploy from an outage.
   */
  handOver(): void {
    this.isHandingOver = true;
  }

  /** The session ended (or cancelled its forward): frees its slot, and the listener with the last one. */
  async detach(session: ForwardingSession, error: StatusError): Promise<void> {
    const entry = this.entries.get(session.tunnelId);
    if (!entry || entry.slots.get(session.connectorId) !== session) return;
    entry.slots.delete(session.connectorId);
    if (entry.slots.size === 0) this.carried.delete(session.tunnelId);
    // While another gateway carries the tunnel, its port here keeps relaying there.
    if (entry.slots.size === 0 && entry.peers.length === 0) {
      this.removeEntry(session.tunnelId, entry);
      await entry.listener.close();
    }
    const at = this.options.now().toISOString();
    const down: TunnelStateItem = {
      state: 'down',
      since: at,
      lastSeenAt: at,
      owner: this.options.workerId,
      connId: session.connId,
      connectedAt: session.connectedAt,
      error: this.isHandingOver ? gatewayRestarted(at) : error,
    };
    if (this.isHandingOver) down.cause = 'restart';
    this.options.stateWriter.write(session.tunnelId, down, session.connectorId);
  }

  /**
   * A shutdown's drain: every listener here stops accepting (new connections go to the other
   * gateways on the port), the connections it accepted and the channels its sessions carry
   * (relayed ones included) finish, up to `deadline` (epoch ms); then the sessions close and their
   * customers reconnect elsewhere.
   */
  async drain(deadline: number): Promise<void> {
    const entries = [...this.entries.values()];
    const sessions = entries.flatMap((e) => [...e.slots.values()]);
    for (const entry of entries) {
      entry.isDraining = true;
      entry.listener.stopAccepting();
    }
    const isBusy = () =>
      entries.some((e) => e.listener.activeConnections > 0) || sessions.some((s) => s.activeChannels() > 0);
    while (Date.now() < deadline && isBusy()) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_CHECK_MS));
    }
    for (const session of sessions) this.closeSession(session, 'gateway shutting down');
  }

  /** Closes every listener left (relays, and any whose sessions are gone): the end of a shutdown. */
  async closeListeners(): Promise<void> {
    const entries = [...this.entries];
    for (const [tunnelId, entry] of entries) this.removeEntry(tunnelId, entry);
    await Promise.all(entries.map(([, e]) => e.listener.close()));
  }

  /** Closes the tunnel's connections (deleted, disabled); their close detaches them. */
  closeTunnel(tunnelId: string, reason: string): void {
    for (const session of this.sessionsOf(tunnelId)) this.closeSession(session, reason);
  }

  /** Closes one connector's connection (its key removed or rotated away). */
  closeSession(session: ForwardingSession, reason: string): void {
    this.options.logger.info('closing reverse tunnel session', {
      tunnelId: session.tunnelId,
      connectorId: session.connectorId,
      connId: session.connId,
      reason,
    });
    session.close();
  }

  private addEntry(tunnelId: string, entry: Entry): void {
    this.entries.set(tunnelId, entry);
    this.byPort.set(entry.port, entry);
  }

  private removeEntry(tunnelId: string, entry: Entry): void {
    this.entries.delete(tunnelId);
    if (this.byPort.get(entry.port) === entry) this.byPort.delete(entry.port);
    this.carried.delete(tunnelId);
  }

  private async openListener(
    tunnelId: string,
    port: number,
    session: ForwardingSession | undefined,
  ): Promise<Entry | undefined> {
    const { bindHost, maxChannelsPerTunnel, logger } = this.options;
    const listener = new TunnelListener({
      tunnelId,
      host: bindHost,
      port,
      maxChannels: maxChannelsPerTunnel,
      idleTimeoutMs: this.options.dataIdleTimeoutMs,
      logger,
      ...(this.options.meter ? { traffic: { meter: this.options.meter, type: 'reverse' as const } } : {}),
    });
    try {
      await listener.listen();
    } catch (err) {
      logger.error(
        session
          ? 'reverse forward refused: tunnel port unavailable'
          : 'tunnel relay not listening: port unavailable',
        {
          tunnelId,
          host: bindHost,
          port,
          code: (err as NodeJS.ErrnoException).code,
        },
      );
      return undefined;
    }
    const entry: Entry = {
      listener,
      port,
      slots: new Map(session ? [[session.connectorId, session]] : []),
      peers: [],
      turn: 0,
      peerTurn: 0,
    };
    listener.setOpener((origin) => this.openThrough(entry, origin));
    return entry;
  }

  /**
   * Opens a channel for a platform connection through one of the tunnel's sessions here, in turn,
   * then (unless `isLocalOnly`: a relayed connection never relays again) through the gateways that
   * carry it elsewhere; one that refuses or is gone before the channel opens passes it to the next.
   */
  private async openThrough(
    entry: Entry,
    origin: { ip: string; port: number },
    options = { isLocalOnly: false },
  ): Promise<SshChannel> {
    const sessions = [...entry.slots.values()];
    const peers = options.isLocalOnly || !this.options.relay ? [] : [...entry.peers];
    if (sessions.length + peers.length === 0) throw new Error('no session carries the tunnel');
    const first = sessions.length > 0 ? entry.turn++ % sessions.length : 0;
    if (entry.turn >= Number.MAX_SAFE_INTEGER) entry.turn = 0;
    const local: (() => Promise<SshChannel>)[] = sessions.map((_, i) => {
      const session = sessions[(first + i) % sessions.length] as ForwardingSession;
      return async () => {
        const channel = await this.openerOf(session)(origin);
        this.carriers.set(channel, () => session.isGone());
        return channel;
      };
    });
    const remote: (() => Promise<SshChannel>)[] = [];
    const firstPeer = peers.length > 0 ? entry.peerTurn++ % peers.length : 0;
    if (entry.peerTurn >= Number.MAX_SAFE_INTEGER) entry.peerTurn = 0;
    const { relay } = this.options;
    const tunnelId = entry.listener.tunnelId;
    for (let i = 0; i < peers.length && relay; i++) {
      const peer = peers[(firstPeer + i) % peers.length] as PeerRef;
      remote.push(() => relay.open(peer, tunnelId, origin));
    }
    // Draining: the sessions here are on their way out; they take only what nobody else can.
    const tries = entry.isDraining ? [...remote, ...local] : [...local, ...remote];
    let failure: unknown;
    for (const [i, attempt] of tries.entries()) {
      try {
        return await attempt();
      } catch (err) {
        failure = err;
        if (i < tries.length - 1) {
          this.options.logger.info('tunnel connection retried on another connector', {
            tunnelId,
            reason: err instanceof Error ? err.message : String(err),
          });
        }
      }
    }
    throw failure;
  }

  /** The session's channel opener, each platform connection's outcome told as the service's reachability. */
  private openerOf(session: ForwardingSession): ChannelOpener {
    const { signals } = this.options;
    if (!signals) return session.open;
    return reportingOutcomes(session.open, refusedByCustomerClient, (outcome) =>
      signals.serviceOutcome(session.tunnelId, outcome),
    );
  }

  private takeOver(entry: Entry, previous: ForwardingSession, next: ForwardingSession): void {
    entry.slots.set(next.connectorId, next);
    previous.takenOver();
    this.writeUp(next, previous.connId);
    this.options.signals?.takeover(next.tunnelId, previous.source, next.source);
    this.options.logger.info('reverse tunnel taken over by a newer login', {
      tunnelId: next.tunnelId,
      connectorId: next.connectorId,
      connId: next.connId,
      previousConnId: previous.connId,
    });
    // Let the old connection finish what it carries, briefly, then close it.
    const deadline = Date.now() + this.options.takeoverDrainMs;
    const timer = setInterval(() => {
      if (previous.activeChannels() === 0 || Date.now() >= deadline) {
        clearInterval(timer);
        previous.close();
      }
    }, 50);
    timer.unref();
  }

  private writeUp(session: ForwardingSession, continues?: string): void {
    const at = this.options.now().toISOString();
    const item: TunnelStateItem = {
      state: 'up',
      since: at,
      lastSeenAt: at,
      owner: this.options.workerId,
      connId: session.connId,
      connectedAt: session.connectedAt,
      connectHost: this.options.connectHost,
    };
    if (session.commandTag) item.commandTag = session.commandTag;
    if (continues) item.continues = continues;
    this.options.stateWriter.write(session.tunnelId, item, session.connectorId);
  }
}

function samePeers(a: readonly PeerRef[], b: readonly PeerRef[]): boolean {
  return (
    a.length === b.length &&
    a.every((p, i) => p.workerId === b[i]?.workerId && p.controlUrl === b[i]?.controlUrl)
  );
}

/**
 * The reverse-tunnel SSH endpoint customers reach with `ssh -R`. Public-key logins as the tunnel
 * id; the tunnel's one `tcpip-forward` granted; everything else refused with a reason in our log.
 * Our own TCP server sits in front of ssh2 to admit unauthenticated connections (admission/) and
 * bound their handshakes; logins beyond the tunnel's session limit, or that cannot be checked
 * because storage is down, are refused with a reason the customer's ssh prints.
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import ssh2, { type Connection } from 'ssh2';
import { TUNNEL_ID_PATTERN } from '../../shared/ids';
import type { Logger } from '../../shared/logger';
import {
  type AlgorithmProfile,
  algorithmOffer,
  profileForClient,
  USER_KEY_SIGNATURE_ALGORITHMS,
  withPostQuantum,
} from '../../shared/ssh-algorithms';
import type { GatewayStore } from '../../shared/store/gateway-store';
import type { TunnelChange } from '../../shared/store/tunnel-changes';
import type { TunnelRecord } from '../../shared/tunnel';
import {
  AdmissionControl,
  type AdmissionSettings,
  type AdmissionStats,
  DropReason,
  type UnauthenticatedConnection,
} from '../admission/admission-control';
import { DEFAULT_DROP_LOG, DropLog, type DropLogSettings } from '../admission/drop-log';
// For its effect: registers with ssh2 the post-quantum methods withPostQuantum offers, before any Server is made.
import '../pq-kex/post-quantum-kex';
import {
  identificationForLog,
  readClientIdentification,
  serverIdentificationLine,
  skipRepeatedIdentification,
} from './client-identification';
import {
  type AdmittedSocket,
  type ConnectionContext,
  CustomerConnection,
  signatureAlgorithm,
} from './customer-connection';
import type { ForwardRegistry } from './forward-registry';
import { announceSignatureAlgorithms } from './server-sig-algs';
import { TunnelCache, type TunnelCacheSettings } from './tunnel-cache';
import { TunnelLookup } from './tunnel-lookup';
import { TunnelSessions } from './tunnel-sessions';

const { Server: SshServer } = ssh2;

export interface ReverseServerSettings {
  listenHost: string;
  listenPort: number;
  keepaliveIntervalMs: number;
  /** Keepalive intervals of silence after which the customer is gone (CONTRACT: down within × 3 + heartbeat). */
  keepaliveCountMax: number;
  /** From TCP accept to authenticated: slower clients are dropped. */
  handshakeTimeoutMs: number;
  /** Failed authentication attempts per connection before it is closed (sshd's MaxAuthTries). */
  maxAuthAttempts: number;
  admission: AdmissionSettings;
  /** Logged-in sessions of one tunnel at once (MAX_SESSIONS_PER_TUNNEL). */
  maxSessionsPerTunnel: number;
  tunnelCache: TunnelCacheSettings;
  /** A login's tunnel read still unanswered after this counts as a storage outage. */
  loginReadTimeoutMs: number;
  dropLog?: DropLogSettings;
}

export interface ReverseServerDeps {
  store: GatewayStore;
  registry: ForwardRegistry;
  logger: Logger;
  hostKey: string;
  settings: ReverseServerSettings;
  now: () => Date;
  /** Called after each successful login. */
  onLogin?: (tunnel: TunnelRecord, keyFingerprint: string) => void;
  /** Told of refused and successful logins (the `login_refused` warning). */
  signals?: ConnectionContext['signals'];
  /** Counts logins accepted and refused (the operator's metrics). */
  logins?: ConnectionContext['logins'];
}

/** Our software name in the identification line (`SSH-2.0-Tunnelkeeper`). */
const SERVER_SOFTWARE = 'Tunnelkeeper';
const SERVER_IDENTIFICATION = serverIdentificationLine(SERVER_SOFTWARE);

/** Tunnel reads in flight at once; beyond, a login is answered as during an outage. */
const MAX_LOGIN_READS_IN_FLIGHT = 256;
/**
 * Connections the kernel completes before we accept them (Linux caps it at net.core.somaxconn).
 * Node's 511 overflows under a reconnect wave after a restart, or a flood: the kernel then drops
 * SYNs, and a customer's ssh waits out TCP's 1 s (then 3 s) retransmission before it even
 * connects. A longer queue is a short wait in the kernel instead.
 */
const LISTEN_BACKLOG = 4096;

/** A TCP connection from accept until it logs in or closes: its admission and its deadlines. */
interface PendingSocket {
  socket: Socket;
  address: string;
  admission: UnauthenticatedConnection;
  bannerTimer: NodeJS.Timeout | undefined;
  handshakeTimer: NodeJS.Timeout;
  /** The client's identification line, for logs (printable, cut short). */
  client?: string;
}

export class ReverseServer {
  private readonly net: NetServer;
  /** One ssh2 server per algorithm profile: ssh2 fixes its offer per server. */
  private readonly ssh: Record<AlgorithmProfile, InstanceType<typeof SshServer>>;
  private readonly admission: AdmissionControl;
  private readonly dropLog: DropLog;
  private readonly sessions: TunnelSessions;
  private readonly lookup: TunnelLookup;
  private readonly pending = new Map<string, PendingSocket>();
  private readonly sockets = new Set<Socket>();
  private readonly context: ConnectionContext;
  private hasWarnedSigAlgs = false;

  constructor(private readonly deps: ReverseServerDeps) {
    const { settings } = deps;
    this.admission = new AdmissionControl(settings.admission);
    this.dropLog = new DropLog(deps.logger, settings.dropLog ?? DEFAULT_DROP_LOG);
    this.sessions = new TunnelSessions(settings.maxSessionsPerTunnel);
    this.lookup = new TunnelLookup({
      read: (id) => deps.store.getTunnelById(id),
      cache: new TunnelCache(settings.tunnelCache),
      timeoutMs: settings.loginReadTimeoutMs,
      maxInFlight: MAX_LOGIN_READS_IN_FLIGHT,
    });
    this.context = {
      logger: deps.logger,
      lookup: this.lookup,
      sessions: this.sessions,
      registry: deps.registry,
      keepaliveIntervalMs: settings.keepaliveIntervalMs,
      keepaliveCountMax: settings.keepaliveCountMax,
      maxAuthAttempts: settings.maxAuthAttempts,
      now: deps.now,
    };
    if (deps.onLogin) this.context.onLogin = deps.onLogin;
    if (deps.signals) this.context.signals = deps.signals;
    if (deps.logins) this.context.logins = deps.logins;
    this.ssh = {
      'aes-gcm': this.sshServerFor('aes-gcm'),
      compatible: this.sshServerFor('compatible'),
    };
    this.net = createServer({ noDelay: true }, (socket) => this.onSocket(socket));
  }

  private sshServerFor(profile: AlgorithmProfile): InstanceType<typeof SshServer> {
    const { settings } = this.deps;
    const offer = algorithmOffer(profile);
    return new SshServer(
      {
        hostKeys: [this.deps.hostKey],
        ident: SERVER_SOFTWARE,
        keepaliveInterval: settings.keepaliveIntervalMs,
        // ssh2 gives up on the tick after countMax unanswered pings, i.e. after countMax + 1 silent
        // intervals (lib/server.js): one less makes it countMax intervals, inside the contract's bound.
        keepaliveCountMax: Math.max(0, settings.keepaliveCountMax - 1),
        // Every list explicit: ssh2's defaults add group exchange (which its server cannot do) and zlib.
        algorithms: {
          kex: withPostQuantum(offer.kex) as ssh2.KexAlgorithm[],
          serverHostKey: [...offer.serverHostKey] as ssh2.ServerHostKeyAlgorithm[],
          cipher: [...offer.cipher] as ssh2.CipherAlgorithm[],
          hmac: [...offer.hmac] as ssh2.MacAlgorithm[],
          compress: [...offer.compress] as ssh2.CompressionAlgorithm[],
        },
      },
      (conn, info) => {
        if (!announceSignatureAlgorithms(conn, USER_KEY_SIGNATURE_ALGORITHMS)) this.sigAlgsLeftToSsh2();
        this.logAlgorithmsAtLogin(conn, info, profile);
        this.onConnection(conn, info);
      },
    );
  }

  /** Listens; resolves with the bound port (useful with port 0). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.net.once('error', reject);
      const { listenPort: port, listenHost: host } = this.deps.settings;
      this.net.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
        this.net.off('error', reject);
        const address = this.net.address();
        resolve(typeof address === 'object' && address ? address.port : this.deps.settings.listenPort);
      });
    });
  }

  /** Open TCP connections, authenticated or not (for limits and leak checks). */
  get connectionCount(): number {
    return this.sockets.size;
  }

  get unauthenticatedCount(): number {
    return this.admission.unauthenticatedCount;
  }

  /** Admission's tallies: unauthenticated connections now, drops by reason since start. */
  admissionStats(): AdmissionStats {
    return this.admission.stats();
  }

  /** Logged-in sessions of `tunnelId` that count against MAX_SESSIONS_PER_TUNNEL. */
  sessionCount(tunnelId: string): number {
    return this.sessions.count(tunnelId);
  }

  /** Tunnel records read elsewhere on this gateway (the heartbeat's check) keep the login cache fresh. */
  sawTunnels(ids: readonly string[], records: ReadonlyMap<string, TunnelRecord>): void {
    this.lookup.sawRecords(ids, records);
  }

  /** The table's change log vouches for every cached tunnel record up to `atMs` but those `changes` outdate. */
  confirmUnchanged(atMs: number, changes: readonly TunnelChange[]): void {
    this.lookup.confirmUnchanged(atMs, changes);
  }

  /** Stops accepting new connections; the logged-in ones go on (a shutdown's drain). */
  stopAccepting(): void {
    this.net.close();
  }

  /** Stops accepting and closes every connection. */
  async close(): Promise<void> {
    // After stopAccepting the server may have closed already: a second close's callback waits for
    // a 'close' that never comes (and an idle process would end on the spot).
    const closed = this.net.listening
      ? new Promise<void>((resolve) => this.net.close(() => resolve()))
      : Promise.resolve();
    for (const socket of this.sockets) socket.destroy();
    this.dropLog.close();
    await closed;
  }

  private onSocket(socket: Socket): void {
    const { settings } = this.deps;
    const address = socket.remoteAddress ?? 'unknown';
    socket.on('error', () => {}); // the SSH layer reports what matters
    const admitted = this.admission.admit(address, (reason, fields) => {
      this.dropLog.drop(address, reason, fields);
      socket.destroy();
    });
    if (!admitted.ok) {
      // No line to the client as sshd writes: OpenSSH shows it only with -v, and a flood is
      // turned away cheapest without it.
      this.dropLog.drop(address, admitted.reason, admitted.fields);
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setKeepAlive(true, 30_000);
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    const entry: PendingSocket = {
      socket,
      address,
      admission: admitted.connection,
      bannerTimer:
        settings.admission.bannerTimeoutMs < settings.handshakeTimeoutMs
          ? setTimeout(() => this.deadlinePassed(entry), settings.admission.bannerTimeoutMs)
          : undefined,
      handshakeTimer: setTimeout(() => this.deadlinePassed(entry), settings.handshakeTimeoutMs),
    };
    this.pending.set(key, entry);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.pending.delete(key);
      this.settled(entry);
    });
    // Our identification at once (clients such as older libssh wait for it before sending theirs);
    // theirs picks the ssh2 server, and with it the algorithms offered. The banner deadline bounds
    // the wait for it.
    socket.write(SERVER_IDENTIFICATION);
    readClientIdentification(socket, (identification) => {
      if (identification?.startsWith('SSH-')) {
        clearTimeout(entry.bannerTimer);
        entry.admission.bannerReceived();
      }
      entry.client = identificationForLog(identification);
      skipRepeatedIdentification(socket, SERVER_IDENTIFICATION);
      this.ssh[profileForClient(identification)].injectSocket(socket);
    });
  }

  /**
   * One debug line per login with what was negotiated and how the client signed: which clients
   * need the compatible set, or still sign with SHA-1 RSA, before either is withdrawn.
   */
  private logAlgorithmsAtLogin(
    conn: Connection,
    info: { ip: string; port: number },
    profile: AlgorithmProfile,
  ): void {
    let negotiated: ssh2.NegotiatedAlgorithms | undefined;
    let signature: string | undefined;
    let user = '';
    conn.once('handshake', (n) => {
      negotiated = n;
    });
    const onAuthentication = (ctx: ssh2.AuthContext) => {
      if (ctx.method !== 'publickey' || !ctx.signature) return;
      signature = signatureAlgorithm(ctx.key.algo, ctx.hashAlgo);
      user = ctx.username;
    };
    conn.on('authentication', onAuthentication);
    // Nothing of this is kept for the life of the session.
    conn.once('ready', () => {
      conn.off('authentication', onAuthentication);
      this.deps.logger.debug('ssh login algorithms', {
        tunnelId: TUNNEL_ID_PATTERN.test(user) ? user : undefined,
        source: info.ip,
        sourcePort: info.port,
        client: this.pending.get(`${info.ip}:${info.port}`)?.client,
        profile,
        kex: negotiated?.kex,
        hostKey: negotiated?.serverHostKey,
        cipher: negotiated?.cs.cipher,
        mac: negotiated?.cs.mac || undefined,
        compression: negotiated?.cs.compress,
        signature,
      });
    });
  }

  private sigAlgsLeftToSsh2(): void {
    if (this.hasWarnedSigAlgs) return;
    this.hasWarnedSigAlgs = true;
    this.deps.logger.warn('server-sig-algs left to ssh2', {
      consequence:
        'clients will not sign with ecdsa-sha2-nistp521 or rsa-sha2-512 (Dropbear P-521 keys fail)',
      fix: 'ssh2 internals moved: update fargate/reverse/server-sig-algs.ts',
    });
  }

  /** The banner deadline or the handshake deadline passed before the login. */
  private deadlinePassed(entry: PendingSocket): void {
    const { admission } = entry;
    if (admission.isDone) return;
    const silent = !admission.hasSentBanner;
    const reason = silent ? DropReason.silent : DropReason.handshakeTimeout;
    const penalty = admission.timedOut(reason, silent ? 'silent' : 'handshake-timeout');
    this.settled(entry);
    this.dropLog.drop(entry.address, reason, {
      penaltyS: Math.round(penalty.outstandingMs / 1000),
      penalized: penalty.active,
    });
    entry.socket.destroy();
  }

  /** The connection no longer counts as unauthenticated (logged in, or gone). */
  private settled(entry: PendingSocket): void {
    clearTimeout(entry.bannerTimer);
    clearTimeout(entry.handshakeTimer);
    entry.admission.done();
  }

  private onConnection(conn: Connection, info: { ip: string; port: number }): void {
    const pending = this.pending.get(`${info.ip}:${info.port}`);
    // ssh2 emits 'connection' once the client's identification string has arrived.
    if (pending) clearTimeout(pending.bannerTimer);
    pending?.admission.bannerReceived();
    new CustomerConnection(conn, info.ip, pending && this.admitted(pending), this.context).listen();
  }

  /** What a customer connection needs of its socket's admission. */
  private admitted(entry: PendingSocket): AdmittedSocket {
    return {
      socket: entry.socket,
      loginFailed: () => entry.admission.loginFailed(),
      settled: () => this.settled(entry),
    };
  }
}

/**
 * The reverse-tunnel SSH endpoint customers reach with `ssh -R`. Public-key logins as the tunnel
 * id; the tunnel's one `tcpip-forward` granted; everything else refused with a reason in our log.
 * Our own TCP server sits in front of ssh2 to admit unauthenticated connections (admission/) and
 * bound their handshakes; logins beyond the tunnel's session limit, or that cannot be checked
 * because storage is down, are refused with a reason the customer's ssh prints.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import ssh2, { type AuthContext, type Connection, type ParsedKey } from 'ssh2';
import { TUNNEL_ID_PATTERN } from '../../shared/ids';
import { fingerprintOf } from '../../shared/keys';
import type { Logger } from '../../shared/logger';
import type { StatusError } from '../../shared/schemas';
import {
  type AlgorithmProfile,
  algorithmOffer,
  profileForClient,
  USER_KEY_SIGNATURE_ALGORITHMS,
} from '../../shared/ssh-algorithms';
import { customerNotConnected, customerTimeout } from '../../shared/status-errors';
import type { GatewayStore } from '../../shared/store/gateway-store';
import type { TunnelRecord } from '../../shared/tunnel';
import {
  AdmissionControl,
  type AdmissionSettings,
  type AdmissionStats,
  DropReason,
  type UnauthenticatedConnection,
} from '../admission/admission-control';
import { DEFAULT_DROP_LOG, DropLog, type DropLogSettings } from '../admission/drop-log';
import type { SshChannel } from '../pipe';
import { rejectAsProhibited } from './channel-refusal';
import {
  identificationForLog,
  readClientIdentification,
  serverIdentificationLine,
  skipRepeatedIdentification,
} from './client-identification';
import { DisconnectReason, disconnectWithReason } from './disconnect';
import type { ForwardingSession, ForwardRegistry } from './forward-registry';
import { announceSignatureAlgorithms } from './server-sig-algs';
import { TunnelCache, type TunnelCacheSettings } from './tunnel-cache';
import { TunnelLookup, type TunnelLookupResult } from './tunnel-lookup';
import { TunnelSessions } from './tunnel-sessions';

const { Server: SshServer, utils } = ssh2;

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
}

/** Our software name in the identification line (`SSH-2.0-Tunnelkeeper`). */
const SERVER_SOFTWARE = 'Tunnelkeeper';
const SERVER_IDENTIFICATION = serverIdentificationLine(SERVER_SOFTWARE);

const SESSION_REFUSAL = (tunnelId: string) =>
  `This endpoint only carries the reverse tunnel of ${tunnelId}: run ssh with -N (no shell, no command), ` +
  'as in reverse.commands of the Tunnelkeeper API.\r\n';

const DIRECT_TCPIP_REFUSAL = 'local (-L), dynamic (-D) and jump (-J) forwarding are not allowed';
const STREAMLOCAL_REFUSAL = 'Unix-socket forwarding is not allowed';
/** Follows a channel refusal in OpenSSH's "open failed: administratively prohibited: …" line. */
const ONLY_THE_TUNNEL = "this endpoint only carries the tunnel's own -R";

/** Printed by OpenSSH as "Received disconnect from HOST port P:7: …". */
const STORAGE_UNAVAILABLE_REFUSAL =
  'Tunnelkeeper is temporarily unavailable: it cannot check logins right now (its storage does not answer). ' +
  'This is not a problem with your key; retry in a minute (autossh and systemd retry by themselves).';
const INTERNAL_ERROR_REFUSAL =
  'Tunnelkeeper could not check this login because of an internal error on our side (it has been logged). ' +
  'This is not a problem with your key.';
const tooManySessions = (tunnelId: string, limit: number) =>
  `Too many sessions of tunnel ${tunnelId} at once (at most ${limit} on this endpoint): ` +
  "another copy of this tunnel's ssh or autossh may be running somewhere; stop the extra ones.";

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

/** How one authentication attempt ended. `key-ok` answers a signature-less "would this key do?". */
type AuthOutcome =
  | { kind: 'accepted' }
  | { kind: 'key-ok' }
  | { kind: 'refused'; reason: string }
  | {
      kind: 'disconnect';
      code: DisconnectReason;
      description: string;
      reason: string;
      fields?: Record<string, unknown>;
    };

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
          kex: [...offer.kex] as ssh2.KexAlgorithm[],
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

  /** Stops accepting and closes every connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.net.close(() => resolve()));
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
    const { logger, settings } = this.deps;
    const pending = this.pending.get(`${info.ip}:${info.port}`);
    // ssh2 emits 'connection' once the client's identification string has arrived.
    if (pending) clearTimeout(pending.bannerTimer);
    pending?.admission.bannerReceived();
    const source = info.ip;
    const connId = `c_${randomBytes(8).toString('hex')}`;
    let tunnel: TunnelRecord | undefined;
    let keyFingerprint = '';
    let session: ForwardingSession | undefined;
    /** The tunnel whose session count this login holds a place in. */
    let countedAs: string | undefined;
    let failures = 0;
    let endReason: StatusError | undefined;
    let channels = 0;
    // Clients ask "would this key do?" and then sign: two attempts milliseconds apart for one login.
    // The tunnel read for the first serves the second (one DynamoDB read per login, not two); a
    // change in between is caught by the heartbeat's recheck like any later change.
    let lookup: { username: string; result: Promise<TunnelLookupResult> } | undefined;
    const tunnelNamed = (username: string) => {
      if (lookup?.username !== username) {
        const result = this.lookup.find(username);
        const entry = { username, result };
        // Only an answer is reused: after a failure the next attempt reads again.
        result.then(
          (r) => {
            if (r.outcome === 'unavailable' && lookup === entry) lookup = undefined;
          },
          () => {
            if (lookup === entry) lookup = undefined;
          },
        );
        lookup = entry;
      }
      return lookup.result;
    };
    const uncount = () => {
      if (countedAs) this.sessions.remove(countedAs, connId);
      countedAs = undefined;
    };

    const log = (msg: string, fields: Record<string, unknown> = {}) =>
      logger.info(msg, { connId, source, tunnelId: tunnel?.id, ...fields });
    const refuse = (what: string, reason: string, fields: Record<string, unknown> = {}) =>
      log('ssh request refused', { what, reason, ...fields });

    conn.on('error', (err: Error & { level?: string }) => {
      if (err.level === 'client-timeout') {
        const seconds = Math.round((settings.keepaliveIntervalMs * settings.keepaliveCountMax) / 1000);
        endReason = customerTimeout(seconds, source);
        log('ssh connection timed out', { reason: 'no answer to keepalives' });
        // ssh2 answers the timeout with end(), a half-close: a peer that is frozen or gone never
        // sends its FIN, so the socket (and with it the listener and the `up` state) would stay
        // forever. Destroy it once ssh2 has queued its disconnect.
        setImmediate(() => pending?.socket.destroy());
      } else {
        log('ssh connection error', { reason: err.message });
      }
    });

    conn.on('authentication', (ctx) => {
      // Clients open with `none` to learn the methods: an answer, not a failed attempt.
      if (ctx.method === 'none') {
        ctx.reject(['publickey']);
        return;
      }
      void this.authenticate(ctx, connId, tunnelNamed, (t, fingerprint) => {
        tunnel = t;
        keyFingerprint = fingerprint;
        countedAs = t.id;
      }).then(
        (outcome) => {
          if (outcome.kind === 'accepted' || outcome.kind === 'key-ok') return;
          if (outcome.kind === 'disconnect') {
            // Not the client's fault (our storage, or a limit it is told about): no penalty.
            const level = outcome.code === DisconnectReason.TOO_MANY_CONNECTIONS ? 'info' : 'warn';
            logger[level]('ssh login refused', {
              connId,
              source,
              user: userForLog(ctx.username),
              method: ctx.method,
              reason: outcome.reason,
              disconnectCode: outcome.code,
              ...outcome.fields,
            });
            disconnectWithReason(conn, pending?.socket, outcome.code, outcome.description);
            return;
          }
          failures++;
          log('ssh login refused', {
            user: userForLog(ctx.username),
            method: ctx.method,
            reason: outcome.reason,
          });
          const delay = pending?.admission.loginFailed() ?? 0;
          setTimeout(() => {
            if (failures >= settings.maxAuthAttempts) {
              log('ssh connection closed', {
                reason: `too many failed authentication attempts (${failures})`,
              });
              ctx.reject();
              conn.end();
            } else {
              ctx.reject(['publickey']);
            }
          }, delay);
        },
        (err: unknown) => {
          logger.error('ssh authentication failed internally', { connId, source, err });
          disconnectWithReason(
            conn,
            pending?.socket,
            DisconnectReason.BY_APPLICATION,
            INTERNAL_ERROR_REFUSAL,
          );
        },
      );
    });

    conn.on('ready', () => {
      if (pending) this.settled(pending);
      if (!tunnel) {
        conn.end();
        return;
      }
      const t = tunnel;
      log('ssh login accepted', { user: t.id, keyFingerprint, sessions: this.sessions.count(t.id) });
      this.deps.onLogin?.(t, keyFingerprint);
      session = {
        connId,
        tunnelId: t.id,
        source,
        connectedAt: this.deps.now().toISOString(),
        keyFingerprint,
        activeChannels: () => channels,
        takenOver: uncount,
        close: () => conn.end(),
        open: () => Promise.reject(new Error('no forward requested yet')),
      };
    });

    conn.on('request', (accept, reject, name, info) => {
      const t = tunnel;
      const s = session;
      if (!t || !s) {
        reject?.();
        return;
      }
      if (name === 'tcpip-forward') {
        const { bindAddr, bindPort } = info as { bindAddr: string; bindPort: number };
        if (bindPort !== t.port) {
          refuse('tcpip-forward', `only -R ${t.port}:... is allowed for this tunnel`, { bindPort });
          reject?.();
          return;
        }
        s.open = (origin) =>
          openForwardedChannel(
            conn,
            bindAddr,
            bindPort,
            origin,
            () => channels++,
            () => channels--,
          );
        // Answered on every path: global-request replies are ordered, one left open stalls keepalives.
        this.deps.registry.attach(s, t).then(
          (ok) => {
            if (ok) {
              log('reverse forward granted', { bindAddr, bindPort });
              accept?.();
            } else {
              refuse('tcpip-forward', 'tunnel port unavailable on this worker', { bindPort });
              reject?.();
            }
          },
          (err: unknown) => {
            logger.error('reverse forward failed internally', { connId, tunnelId: t.id, err });
            reject?.();
          },
        );
      } else if (name === 'cancel-tcpip-forward') {
        void this.deps.registry.detach(s, customerNotConnected('the customer cancelled the forward'));
        accept?.(); // RFC 4254 §7.1; usually sent without want-reply, then accept is undefined
      } else {
        refuse(name, "only the tunnel's tcpip-forward is allowed");
        reject?.();
      }
    });

    conn.on('session', (accept) => {
      const channel = accept();
      const explain = (what: string) => (acceptCh: () => ssh2.ServerChannel) => {
        refuse(what, 'sessions are not allowed; use ssh -N');
        const ch = acceptCh();
        ch.stderr.write(SESSION_REFUSAL(tunnel?.id ?? 'this tunnel'));
        ch.exit(1);
        ch.end();
      };
      channel.on('shell', explain('shell'));
      channel.on('exec', (acceptExec, _reject, execInfo) =>
        explain(`exec (${String(execInfo.command).slice(0, 60)})`)(acceptExec),
      );
      channel.on('subsystem', (_accept, rejectSub, subInfo) => {
        refuse(`subsystem ${String(subInfo.name).slice(0, 40)}`, 'subsystems such as sftp are not allowed');
        rejectSub();
      });
      channel.on('auth-agent', (_accept, rejectAgent) => {
        refuse('agent forwarding', 'agent forwarding is not allowed');
        rejectAgent?.();
      });
      channel.on('x11', (_accept, rejectX11) => {
        refuse('x11 forwarding', 'X11 forwarding is not allowed');
        rejectX11?.();
      });
      channel.on('pty', (acceptPty) => acceptPty?.());
      channel.on('env', (acceptEnv) => acceptEnv?.());
    });

    conn.on('tcpip', (_accept, reject, dest) => {
      refuse('direct-tcpip', DIRECT_TCPIP_REFUSAL, {
        destination: `${String(dest.destIP).slice(0, 100)}:${dest.destPort}`,
      });
      rejectAsProhibited(conn, reject, `${DIRECT_TCPIP_REFUSAL}; ${ONLY_THE_TUNNEL}`);
    });
    conn.on('openssh.streamlocal', (_accept, reject) => {
      refuse('direct-streamlocal', STREAMLOCAL_REFUSAL);
      rejectAsProhibited(conn, reject, `${STREAMLOCAL_REFUSAL}; ${ONLY_THE_TUNNEL}`);
    });

    conn.on('close', () => {
      if (pending) this.settled(pending);
      uncount();
      if (!session) return;
      log('ssh connection closed', { reason: endReason?.code ?? 'closed by the customer' });
      void this.deps.registry.detach(
        session,
        endReason ?? customerNotConnected(`the session from ${source} ended`),
      );
    });
  }

  /**
   * Decides one authentication attempt: a reason to refuse it as a failed login, or to end the
   * connection with a reason the client prints (storage down, the tunnel's session limit).
   */
  private async authenticate(
    ctx: AuthContext,
    connId: string,
    tunnelNamed: (username: string) => Promise<TunnelLookupResult>,
    loggedIn: (tunnel: TunnelRecord, keyFingerprint: string) => void,
  ): Promise<AuthOutcome> {
    const refused = (reason: string): AuthOutcome => ({ kind: 'refused', reason });
    if (ctx.method !== 'publickey') return refused(`${ctx.method} authentication is not allowed`);
    if (!TUNNEL_ID_PATTERN.test(ctx.username)) return refused('user is not a tunnel id');
    const found = await tunnelNamed(ctx.username);
    if (found.outcome === 'unavailable') {
      return {
        kind: 'disconnect',
        code: DisconnectReason.SERVICE_NOT_AVAILABLE,
        description: STORAGE_UNAVAILABLE_REFUSAL,
        reason: 'storage unavailable: the tunnel could not be read, and this gateway has no recent copy',
        fields: { err: found.cause },
      };
    }
    const tunnel = found.tunnel;
    if (tunnel?.type !== 'reverse') return refused('no such reverse tunnel');
    if (!tunnel.enabled) return refused('tunnel is disabled');
    const key = matchingKey(tunnel, ctx.key.algo, ctx.key.data);
    if (!key) return refused("key is not the tunnel's key");
    if (!ctx.signature || !ctx.blob) {
      // RFC 4252 §7: the answer names the algorithm asked for. ssh2 would name the key type
      // (`ssh-rsa` for rsa-sha2-*), and Dropbear signs with what it is told: SHA-1.
      ctx.key.algo = signatureAlgorithm(ctx.key.algo, ctx.hashAlgo);
      ctx.accept();
      return { kind: 'key-ok' };
    }
    if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true)
      return refused('signature does not verify');
    // Counted before accept(), synchronously with the check: two logins racing cannot both pass.
    const counted = this.sessions.tryAdd(tunnel.id, connId);
    if (!counted.ok) {
      return {
        kind: 'disconnect',
        code: DisconnectReason.TOO_MANY_CONNECTIONS,
        description: tooManySessions(tunnel.id, this.sessions.limit),
        reason: `too many sessions of this tunnel at once (${counted.count}, the limit)`,
        fields: { tunnelId: tunnel.id, sessions: counted.count },
      };
    }
    if (found.outcome === 'cached') {
      this.deps.logger.warn('ssh login checked against a cached tunnel: storage unavailable', {
        connId,
        tunnelId: tunnel.id,
        cacheAgeS: Math.round(found.ageMs / 1000),
        err: found.cause,
      });
    }
    loggedIn(tunnel, fingerprintOf(key.getPublicSSH()));
    ctx.accept();
    return { kind: 'accepted' };
  }
}

/** The tunnel's current or still-accepted previous key, if the offered one is one of them. */
function matchingKey(tunnel: TunnelRecord, algo: string, blob: Buffer): ParsedKey | undefined {
  for (const line of [tunnel.publicKey, tunnel.previousPublicKey]) {
    if (!line) continue;
    const parsed = utils.parseKey(line);
    if (parsed instanceof Error || Array.isArray(parsed)) continue;
    const mine = parsed.getPublicSSH();
    if (parsed.type === algo && mine.length === blob.length && timingSafeEqual(mine, blob)) return parsed;
  }
  return undefined;
}

/** The signature algorithm's name: ssh2 reports rsa-sha2-* as `ssh-rsa` with the hash apart. */
function signatureAlgorithm(keyAlgo: string, hashAlgo: string | undefined): string {
  if (keyAlgo !== 'ssh-rsa') return keyAlgo;
  if (hashAlgo === 'sha256') return 'rsa-sha2-256';
  if (hashAlgo === 'sha512') return 'rsa-sha2-512';
  return 'ssh-rsa';
}

function userForLog(user: string): string {
  return TUNNEL_ID_PATTERN.test(user) ? user : `(not a tunnel id, ${Math.min(user.length, 9999)} chars)`;
}

/** Opens a `forwarded-tcpip` channel, echoing the client's exact bind address and port. */
function openForwardedChannel(
  conn: Connection,
  bindAddr: string,
  bindPort: number,
  origin: { ip: string; port: number },
  onOpen: () => void,
  onClose: () => void,
): Promise<SshChannel> {
  return new Promise((resolve, reject) => {
    conn.forwardOut(bindAddr, bindPort, origin.ip, origin.port, (err, channel) => {
      if (err) {
        reject(err);
        return;
      }
      onOpen();
      channel.once('close', onClose);
      resolve(channel as unknown as SshChannel);
    });
  });
}

/**
 * One customer SSH connection to the reverse-tunnel endpoint, from its identification string to
 * its close: a method per SSH event, and the connection's state in named fields instead of a
 * closure's variables. Every authentication attempt and every request that wants a reply is
 * answered exactly once (RFC 4252 §5.1, RFC 4254 §4): with accept, reject, or a disconnect that
 * ends the connection with a reason the customer's ssh prints.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import ssh2, { type AuthContext, type Connection, type ParsedKey } from 'ssh2';
import { commandTagOf } from '../../shared/command-tag';
import { PRIMARY_CONNECTOR_ID } from '../../shared/connectors';
import { TUNNEL_ID_PATTERN } from '../../shared/ids';
import { fingerprintOf } from '../../shared/keys';
import type { Logger } from '../../shared/logger';
import type { LoginRefusalReason } from '../../shared/metrics/operator-metrics';
import type { StatusError } from '../../shared/schemas';
import { customerNotConnected, customerTimeout } from '../../shared/status-errors';
import type { TunnelRecord } from '../../shared/tunnel';
import type { LoginRefusalKind } from '../../shared/tunnel-signals';
import type { SshChannel } from '../pipe';
import type { GatewaySignals } from '../signals/gateway-signals';
import { rejectAsProhibited } from './channel-refusal';
import { DisconnectReason, disconnectWithReason } from './disconnect';
import type { ForwardingSession, ForwardRegistry } from './forward-registry';
import type { TunnelLookup, TunnelLookupResult } from './tunnel-lookup';
import type { TunnelSessions } from './tunnel-sessions';

const { utils } = ssh2;

/** What every connection of the endpoint shares: the server's services and settings. */
export interface ConnectionContext {
  logger: Logger;
  lookup: TunnelLookup;
  sessions: TunnelSessions;
  registry: ForwardRegistry;
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  /** Failed authentication attempts per connection before it is closed (sshd's MaxAuthTries). */
  maxAuthAttempts: number;
  now: () => Date;
  /** Called after each successful login. */
  onLogin?: (tunnel: TunnelRecord, keyFingerprint: string) => void;
  /** Told of refused and successful logins of existing tunnels (the `login_refused` warning). */
  signals?: Pick<GatewaySignals, 'loginRefused' | 'loginSucceeded'>;
  /** Counts logins accepted and refused, by reason (the operator's metrics). */
  logins?: { loginAccepted(): void; loginRefused(reason: LoginRefusalReason): void };
}

/** The TCP connection under ssh2, as admission sees it (absent when ssh2 was handed no socket of ours). */
export interface AdmittedSocket {
  socket: Socket;
  /** A login attempt failed: how long to delay its answer (the source's penalty). */
  loginFailed(): number;
  /** Logged in or gone: it no longer counts as unauthenticated, and its deadlines stop. */
  settled(): void;
}

/** A refused login the tunnel's customer is told about (its status warning), with why. */
interface RefusalOf {
  tunnelId: string;
  kind: LoginRefusalKind;
}

/** How one authentication attempt ended. `key-ok` answers a signature-less "would this key do?". */
type AuthOutcome =
  | { kind: 'accepted' }
  | { kind: 'key-ok' }
  | { kind: 'refused'; reason: string; metric: LoginRefusalReason; of?: RefusalOf }
  | {
      kind: 'disconnect';
      code: DisconnectReason;
      description: string;
      reason: string;
      metric: LoginRefusalReason;
      fields?: Record<string, unknown>;
      of?: RefusalOf;
    };

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

type RequestReply = (() => void) | undefined;

export class CustomerConnection {
  readonly connId = `c_${randomBytes(8).toString('hex')}`;
  /** The tunnel this connection logged in as (set by the accepted login). */
  private tunnel: TunnelRecord | undefined;
  private keyFingerprint = '';
  /** The connector whose key logged in (connectors.ts). */
  private connectorId = PRIMARY_CONNECTOR_ID;
  /** Set at `ready`: what the registry holds while this connection carries the tunnel. */
  private session: ForwardingSession | undefined;
  /** The tunnel whose session count this login holds a place in. */
  private countedAs: string | undefined;
  private failures = 0;
  private isClosed = false;
  /** Why the connection ended, when we know better than "closed by the customer". */
  private endReason: StatusError | undefined;
  private channels = 0;
  /**
   * Clients ask "would this key do?" and then sign: two attempts milliseconds apart for one login.
   * The tunnel read for the first serves the second (one DynamoDB read per login, not two); a
   * change in between is caught by the heartbeat's recheck like any later change.
   */
  private lookup: { username: string; result: Promise<TunnelLookupResult> } | undefined;

  constructor(
    private readonly conn: Connection,
    private readonly source: string,
    private readonly admitted: AdmittedSocket | undefined,
    private readonly context: ConnectionContext,
  ) {}

  /** Attaches one listener per SSH event; with no listener, ssh2 refuses a channel or request itself. */
  listen(): this {
    const { conn } = this;
    conn.on('error', (err: Error & { level?: string }) => this.onError(err));
    conn.on('authentication', (ctx) => this.onAuthentication(ctx));
    conn.on('ready', () => this.onReady());
    conn.on('request', (accept, reject, name, info) => this.onRequest(accept, reject, name, info));
    conn.on('session', (accept) => this.onSession(accept));
    conn.on('tcpip', (_accept, reject, dest) => this.onDirectTcpip(reject, dest));
    conn.on('openssh.streamlocal', (_accept, reject) => this.onDirectStreamlocal(reject));
    conn.on('close', () => this.onClose());
    return this;
  }

  private onError(err: Error & { level?: string }): void {
    if (err.level === 'client-timeout') {
      const { keepaliveIntervalMs, keepaliveCountMax } = this.context;
      const seconds = Math.round((keepaliveIntervalMs * keepaliveCountMax) / 1000);
      this.endReason = customerTimeout(seconds, this.source);
      this.log('ssh connection timed out', { reason: 'no answer to keepalives' });
      // ssh2 answers the timeout with end(), a half-close: a peer that is frozen or gone never
      // sends its FIN, so the socket (and with it the listener and the `up` state) would stay
      // forever. Destroy it once ssh2 has queued its disconnect.
      setImmediate(() => this.admitted?.socket.destroy());
    } else {
      this.log('ssh connection error', { reason: err.message });
    }
  }

  private onAuthentication(ctx: AuthContext): void {
    // Clients open with `none` to learn the methods: an answer, not a failed attempt.
    if (ctx.method === 'none') {
      ctx.reject(['publickey']);
      return;
    }
    // Past the limit the connection is closing; an attempt already on its way gets a plain no.
    if (this.failures >= this.context.maxAuthAttempts) {
      this.context.logins?.loginRefused('too_many_attempts');
      ctx.reject();
      return;
    }
    this.authenticate(ctx).then(
      (outcome) => this.answer(ctx, outcome),
      (err: unknown) => {
        this.context.logger.error('ssh authentication failed internally', {
          connId: this.connId,
          source: this.source,
          err,
        });
        this.context.logins?.loginRefused('internal_error');
        this.disconnect(DisconnectReason.BY_APPLICATION, INTERNAL_ERROR_REFUSAL);
      },
    );
  }

  /** Answers an attempt `authenticate` decided (it accepted by itself where it accepted). */
  private answer(ctx: AuthContext, outcome: AuthOutcome): void {
    if (outcome.kind === 'accepted' || outcome.kind === 'key-ok') return;
    this.context.logins?.loginRefused(outcome.metric);
    if (outcome.of) this.signalRefusal(ctx, outcome.of, outcome.reason);
    if (outcome.kind === 'disconnect') {
      // Not the client's fault (our storage, or a limit it is told about): no penalty.
      const level = outcome.code === DisconnectReason.TOO_MANY_CONNECTIONS ? 'info' : 'warn';
      this.context.logger[level]('ssh login refused', {
        connId: this.connId,
        source: this.source,
        user: userForLog(ctx.username),
        method: ctx.method,
        reason: outcome.reason,
        disconnectCode: outcome.code,
        ...outcome.fields,
      });
      this.disconnect(outcome.code, outcome.description);
      return;
    }
    this.failures++;
    this.log('ssh login refused', {
      user: userForLog(ctx.username),
      method: ctx.method,
      reason: outcome.reason,
    });
    const delay = this.admitted?.loginFailed() ?? 0;
    setTimeout(() => {
      if (this.failures >= this.context.maxAuthAttempts) {
        this.log('ssh connection closed', {
          reason: `too many failed authentication attempts (${this.failures})`,
        });
        ctx.reject();
        this.conn.end();
      } else {
        ctx.reject(['publickey']);
      }
    }, delay);
  }

  /**
   * Decides one authentication attempt: a reason to refuse it as a failed login, or to end the
   * connection with a reason the client prints (storage down, the tunnel's session limit).
   */
  private async authenticate(ctx: AuthContext): Promise<AuthOutcome> {
    const refused = (reason: string, metric: LoginRefusalReason, of?: RefusalOf): AuthOutcome =>
      of ? { kind: 'refused', reason, metric, of } : { kind: 'refused', reason, metric };
    if (ctx.method !== 'publickey') {
      const reason = `${ctx.method} authentication is not allowed`;
      // Answered at once, told to the tunnel's status once its read says it is one.
      if (TUNNEL_ID_PATTERN.test(ctx.username)) this.signalMethodRefusal(ctx, reason);
      return refused(reason, 'method_not_allowed');
    }
    if (!TUNNEL_ID_PATTERN.test(ctx.username)) return refused('user is not a tunnel id', 'not_a_tunnel');
    const found = await this.tunnelNamed(ctx.username);
    if (found.outcome === 'unavailable') {
      return {
        kind: 'disconnect',
        code: DisconnectReason.SERVICE_NOT_AVAILABLE,
        description: STORAGE_UNAVAILABLE_REFUSAL,
        reason: 'storage unavailable: the tunnel could not be read, and this gateway has no recent copy',
        metric: 'storage_unavailable',
        fields: { err: found.cause },
      };
    }
    const tunnel = found.tunnel;
    if (tunnel?.type !== 'reverse') return refused('no such reverse tunnel', 'no_such_tunnel');
    const of = (kind: LoginRefusalKind): RefusalOf => ({ tunnelId: tunnel.id, kind });
    if (!tunnel.enabled) return refused('tunnel is disabled', 'tunnel_disabled', of('disabled'));
    const match = matchingKey(tunnel, ctx.key.algo, ctx.key.data);
    if (!match) return refused("key is not the tunnel's key", 'wrong_key', of('wrong_key'));
    const { key } = match;
    if (!ctx.signature || !ctx.blob) {
      // RFC 4252 §7: the answer names the algorithm asked for. ssh2 would name the key type
      // (`ssh-rsa` for rsa-sha2-*), and Dropbear signs with what it is told: SHA-1.
      ctx.key.algo = signatureAlgorithm(ctx.key.algo, ctx.hashAlgo);
      ctx.accept();
      return { kind: 'key-ok' };
    }
    if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true)
      return refused('signature does not verify', 'bad_signature', of('bad_signature'));
    // A client that left while its tunnel was read must not hold a place it never gives back.
    if (this.isClosed) return refused('the client left before its login was checked', 'client_left');
    // Counted before accept(), synchronously with the check: two logins racing cannot both pass.
    const { sessions } = this.context;
    const counted = sessions.tryAdd(tunnel.id, this.connId);
    if (!counted.ok) {
      return {
        kind: 'disconnect',
        code: DisconnectReason.TOO_MANY_CONNECTIONS,
        description: tooManySessions(tunnel.id, sessions.limit),
        reason: `too many sessions of this tunnel at once (${counted.count}, the limit)`,
        metric: 'too_many_sessions',
        fields: { tunnelId: tunnel.id, sessions: counted.count },
        of: of('too_many_sessions'),
      };
    }
    if (found.outcome === 'cached') {
      this.context.logger.warn('ssh login checked against a cached tunnel: storage unavailable', {
        connId: this.connId,
        tunnelId: tunnel.id,
        cacheAgeS: Math.round(found.ageMs / 1000),
        err: found.cause,
      });
    }
    this.tunnel = tunnel;
    this.connectorId = match.connectorId;
    this.keyFingerprint = fingerprintOf(key.getPublicSSH());
    this.countedAs = tunnel.id;
    ctx.accept();
    return { kind: 'accepted' };
  }

  private signalRefusal(ctx: AuthContext, of: RefusalOf, reason: string): void {
    this.context.signals?.loginRefused(of.tunnelId, {
      kind: of.kind,
      reason,
      source: this.source,
      method: ctx.method,
      ...(ctx.method === 'publickey' ? { keyFingerprint: fingerprintOf(ctx.key.data) } : {}),
    });
  }

  /** A password or keyboard-interactive attempt as a tunnel id: told to that tunnel, if it exists. */
  private signalMethodRefusal(ctx: AuthContext, reason: string): void {
    if (!this.context.signals) return;
    this.tunnelNamed(ctx.username).then(
      (found) => {
        if (found.outcome === 'unavailable' || found.tunnel?.type !== 'reverse') return;
        this.signalRefusal(ctx, { tunnelId: found.tunnel.id, kind: 'method' }, reason);
      },
      () => {}, // the refusal stands; only its warning is lost
    );
  }

  private tunnelNamed(username: string): Promise<TunnelLookupResult> {
    if (this.lookup?.username !== username) {
      const result = this.context.lookup.find(username);
      const entry = { username, result };
      // Only an answer is reused: after a failure the next attempt reads again.
      const forget = () => {
        if (this.lookup === entry) this.lookup = undefined;
      };
      result.then((r) => r.outcome === 'unavailable' && forget(), forget);
      this.lookup = entry;
      return result;
    }
    return this.lookup.result;
  }

  private onReady(): void {
    this.admitted?.settled();
    const tunnel = this.tunnel;
    if (!tunnel) {
      this.conn.end();
      return;
    }
    const { sessions, onLogin, now } = this.context;
    this.log('ssh login accepted', {
      user: tunnel.id,
      connectorId: this.connectorId,
      keyFingerprint: this.keyFingerprint,
      sessions: sessions.count(tunnel.id),
    });
    onLogin?.(tunnel, this.keyFingerprint);
    this.context.logins?.loginAccepted();
    this.context.signals?.loginSucceeded(tunnel.id);
    this.session = {
      connId: this.connId,
      tunnelId: tunnel.id,
      connectorId: this.connectorId,
      source: this.source,
      connectedAt: now().toISOString(),
      keyFingerprint: this.keyFingerprint,
      activeChannels: () => this.channels,
      takenOver: () => this.uncount(),
      isGone: () => this.isClosed || this.admitted?.socket.destroyed === true,
      close: () => this.conn.end(),
      open: () => Promise.reject(new Error('no forward requested yet')),
    };
  }

  /** Global requests (RFC 4254 §4); ssh2 emits them only once the connection is authenticated. */
  private onRequest(accept: RequestReply, reject: RequestReply, name: string, info: unknown): void {
    const { tunnel, session } = this;
    if (!tunnel || !session) {
      reject?.();
      return;
    }
    if (name === 'tcpip-forward') {
      const { bindAddr, bindPort } = info as { bindAddr: string; bindPort: number };
      this.onTcpipForward(tunnel, session, bindAddr, bindPort, accept, reject);
    } else if (name === 'cancel-tcpip-forward') {
      void this.context.registry.detach(session, customerNotConnected('the customer cancelled the forward'));
      accept?.(); // RFC 4254 §7.1; usually sent without want-reply, then accept is undefined
    } else {
      this.refuse(name, "only the tunnel's tcpip-forward is allowed");
      reject?.();
    }
  }

  /** `-R` (RFC 4254 §7.1): only the tunnel's own port is granted. */
  private onTcpipForward(
    tunnel: TunnelRecord,
    session: ForwardingSession,
    bindAddr: string,
    bindPort: number,
    accept: RequestReply,
    reject: RequestReply,
  ): void {
    if (bindPort !== tunnel.port) {
      this.refuse('tcpip-forward', `only -R ${tunnel.port}:... is allowed for this tunnel`, { bindPort });
      reject?.();
      return;
    }
    const commandTag = commandTagOf(bindAddr);
    if (commandTag) session.commandTag = commandTag;
    session.open = (origin) =>
      openForwardedChannel(
        this.conn,
        bindAddr,
        bindPort,
        origin,
        () => this.channels++,
        () => this.channels--,
      );
    // Answered on every path: global-request replies are ordered, one left open stalls keepalives.
    this.context.registry.attach(session, tunnel).then(
      (ok) => {
        if (ok) {
          this.log('reverse forward granted', { bindAddr, bindPort });
          accept?.();
        } else {
          this.refuse('tcpip-forward', 'tunnel port unavailable on this worker', { bindPort });
          reject?.();
        }
      },
      (err: unknown) => {
        this.context.logger.error('reverse forward failed internally', {
          connId: this.connId,
          tunnelId: tunnel.id,
          err,
        });
        reject?.();
      },
    );
  }

  /** A session channel is accepted only to say why nothing runs in it (ssh2 cannot reject with a message). */
  private onSession(accept: () => ssh2.Session): void {
    const channel = accept();
    const explain = (what: string) => (acceptCh: () => ssh2.ServerChannel) => {
      this.refuse(what, 'sessions are not allowed; use ssh -N');
      const ch = acceptCh();
      ch.stderr.write(SESSION_REFUSAL(this.tunnel?.id ?? 'this tunnel'));
      ch.exit(1);
      ch.end();
    };
    channel.on('shell', explain('shell'));
    channel.on('exec', (acceptExec, _reject, execInfo) =>
      explain(`exec (${String(execInfo.command).slice(0, 60)})`)(acceptExec),
    );
    channel.on('subsystem', (_accept, rejectSub, subInfo) => {
      this.refuse(
        `subsystem ${String(subInfo.name).slice(0, 40)}`,
        'subsystems such as sftp are not allowed',
      );
      rejectSub();
    });
    channel.on('auth-agent', (_accept, rejectAgent) => {
      this.refuse('agent forwarding', 'agent forwarding is not allowed');
      rejectAgent?.();
    });
    channel.on('x11', (_accept, rejectX11) => {
      this.refuse('x11 forwarding', 'X11 forwarding is not allowed');
      rejectX11?.();
    });
    channel.on('pty', (acceptPty) => acceptPty?.());
    channel.on('env', (acceptEnv) => acceptEnv?.());
  }

  /** `-L`, `-D`, `-J` through the endpoint (RFC 4254 §7.2). */
  private onDirectTcpip(reject: () => void, dest: { destIP: string; destPort: number }): void {
    this.refuse('direct-tcpip', DIRECT_TCPIP_REFUSAL, {
      destination: `${String(dest.destIP).slice(0, 100)}:${dest.destPort}`,
    });
    rejectAsProhibited(this.conn, reject, `${DIRECT_TCPIP_REFUSAL}; ${ONLY_THE_TUNNEL}`);
  }

  private onDirectStreamlocal(reject: () => void): void {
    this.refuse('direct-streamlocal', STREAMLOCAL_REFUSAL);
    rejectAsProhibited(this.conn, reject, `${STREAMLOCAL_REFUSAL}; ${ONLY_THE_TUNNEL}`);
  }

  private onClose(): void {
    this.isClosed = true;
    this.admitted?.settled();
    this.uncount();
    const { session, endReason } = this;
    if (!session) return;
    this.log('ssh connection closed', { reason: endReason?.code ?? 'closed by the customer' });
    void this.context.registry.detach(
      session,
      endReason ?? customerNotConnected(`the session from ${this.source} ended`),
    );
  }

  /** The login stops counting against the tunnel's sessions (closed, or taken over). */
  private uncount(): void {
    if (this.countedAs) this.context.sessions.remove(this.countedAs, this.connId);
    this.countedAs = undefined;
  }

  private disconnect(code: DisconnectReason, description: string): void {
    disconnectWithReason(this.conn, this.admitted?.socket, code, description);
  }

  private log(msg: string, fields: Record<string, unknown> = {}): void {
    this.context.logger.info(msg, {
      connId: this.connId,
      source: this.source,
      tunnelId: this.tunnel?.id,
      ...fields,
    });
  }

  private refuse(what: string, reason: string, fields: Record<string, unknown> = {}): void {
    this.log('ssh request refused', { what, reason, ...fields });
  }
}

/**
 * The connector the offered key belongs to, and the key: a further connector's key, or the
 * tunnel's current or still-accepted previous key (the primary connector's, unless removed).
 */
function matchingKey(
  tunnel: TunnelRecord,
  algo: string,
  blob: Buffer,
): { key: ParsedKey; connectorId: string } | undefined {
  const candidates: [string, string | undefined][] = (tunnel.connectors ?? []).map((c) => [
    c.id,
    c.publicKey,
  ]);
  if (!tunnel.isPrimaryConnectorRemoved) {
    candidates.push(
      [PRIMARY_CONNECTOR_ID, tunnel.publicKey],
      [PRIMARY_CONNECTOR_ID, tunnel.previousPublicKey],
    );
  }
  for (const [connectorId, line] of candidates) {
    if (!line) continue;
    const parsed = utils.parseKey(line);
    if (parsed instanceof Error || Array.isArray(parsed)) continue;
    const mine = parsed.getPublicSSH();
    if (parsed.type === algo && mine.length === blob.length && timingSafeEqual(mine, blob)) {
      return { key: parsed, connectorId };
    }
  }
  return undefined;
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

/** The signature algorithm's name: ssh2 reports rsa-sha2-* as `ssh-rsa` with the hash apart. */
export function signatureAlgorithm(keyAlgo: string, hashAlgo: string | undefined): string {
  if (keyAlgo !== 'ssh-rsa') return keyAlgo;
  if (hashAlgo === 'sha256') return 'rsa-sha2-256';
  if (hashAlgo === 'sha512') return 'rsa-sha2-512';
  return 'ssh-rsa';
}

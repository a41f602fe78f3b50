/**
 * The reverse-tunnel SSH endpoint customers reach with `ssh -R`. Public-key logins as the tunnel
 * id; the tunnel's one `tcpip-forward` granted; everything else refused with a reason in our log.
 * Our own TCP server sits in front of ssh2 to bound unauthenticated connections and handshakes.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import ssh2, { type AuthContext, type Connection, type ParsedKey } from 'ssh2';
import { TUNNEL_ID_PATTERN } from '../../shared/ids';
import { fingerprintOf } from '../../shared/keys';
import type { Logger } from '../../shared/logger';
import type { StatusError } from '../../shared/schemas';
import { customerNotConnected, customerTimeout } from '../../shared/status-errors';
import type { GatewayStore } from '../../shared/store/gateway-store';
import type { TunnelRecord } from '../../shared/tunnel';
import type { SshChannel } from '../pipe';
import { SourceGuard, type SourceGuardSettings } from '../source-guard';
import { rejectAsProhibited } from './channel-refusal';
import type { ForwardingSession, ForwardRegistry } from './forward-registry';

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
  /** Cipher offer; the client's preference wins among these, so list only ones worth having. */
  ciphers: string[];
  guard: SourceGuardSettings;
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

/** AES-GCM runs on AES-NI through OpenSSL: offered alone, OpenSSH clients cannot pick chacha20 or CTR+MAC. */
export const DEFAULT_CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'];

const SESSION_REFUSAL = (tunnelId: string) =>
  `This endpoint only carries the reverse tunnel of ${tunnelId}: run ssh with -N (no shell, no command), ` +
  'as in reverse.commands of the Tunnelkeeper API.\r\n';

const DIRECT_TCPIP_REFUSAL = 'local (-L), dynamic (-D) and jump (-J) forwarding are not allowed';
const STREAMLOCAL_REFUSAL = 'Unix-socket forwarding is not allowed';
/** Follows a channel refusal in OpenSSH's "open failed: administratively prohibited: …" line. */
const ONLY_THE_TUNNEL = "this endpoint only carries the tunnel's own -R";

interface PendingSocket {
  socket: Socket;
  source: string;
  timer: NodeJS.Timeout;
  released: boolean;
}

export class ReverseServer {
  private readonly net: NetServer;
  private readonly ssh: InstanceType<typeof SshServer>;
  private readonly guard: SourceGuard;
  private readonly pending = new Map<string, PendingSocket>();
  private readonly sockets = new Set<Socket>();

  constructor(private readonly deps: ReverseServerDeps) {
    const { settings } = deps;
    this.guard = new SourceGuard(settings.guard);
    this.ssh = new SshServer(
      {
        hostKeys: [deps.hostKey],
        ident: 'Tunnelkeeper',
        keepaliveInterval: settings.keepaliveIntervalMs,
        // ssh2 gives up on the tick after countMax unanswered pings, i.e. after countMax + 1 silent
        // intervals (lib/server.js): one less makes it countMax intervals, inside the contract's bound.
        keepaliveCountMax: Math.max(0, settings.keepaliveCountMax - 1),
        algorithms: { cipher: settings.ciphers as ssh2.CipherAlgorithm[] },
      },
      (conn, info) => this.onConnection(conn, info),
    );
    this.net = createServer({ noDelay: true }, (socket) => this.onSocket(socket));
  }

  /** Listens; resolves with the bound port (useful with port 0). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(this.deps.settings.listenPort, this.deps.settings.listenHost, () => {
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
    return this.guard.unauthenticatedCount;
  }

  /** Stops accepting and closes every connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.net.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private onSocket(socket: Socket): void {
    const { logger, settings } = this.deps;
    const source = socket.remoteAddress ?? 'unknown';
    socket.on('error', () => {}); // the SSH layer reports what matters
    const admitted = this.guard.admit(source);
    if (!admitted.ok) {
      logger.warn('ssh connection dropped', { source, reason: admitted.reason });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setKeepAlive(true, 30_000);
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    const entry: PendingSocket = {
      socket,
      source,
      released: false,
      timer: setTimeout(() => {
        logger.info('ssh connection dropped', { source, reason: 'handshake and authentication timed out' });
        socket.destroy();
      }, settings.handshakeTimeoutMs),
    };
    this.pending.set(key, entry);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.pending.delete(key);
      this.authenticated(entry);
    });
    this.ssh.injectSocket(socket);
  }

  /** The connection no longer counts as unauthenticated (logged in, or gone). */
  private authenticated(entry: PendingSocket): void {
    clearTimeout(entry.timer);
    if (entry.released) return;
    entry.released = true;
    this.guard.release(entry.source);
  }

  private onConnection(conn: Connection, info: { ip: string; port: number }): void {
    const { logger, settings } = this.deps;
    const pending = this.pending.get(`${info.ip}:${info.port}`);
    const source = info.ip;
    const connId = `c_${randomBytes(8).toString('hex')}`;
    let tunnel: TunnelRecord | undefined;
    let keyFingerprint = '';
    let session: ForwardingSession | undefined;
    let failures = 0;
    let endReason: StatusError | undefined;
    let channels = 0;
    // Clients ask "would this key do?" and then sign: two attempts milliseconds apart for one login.
    // The tunnel read for the first serves the second (one DynamoDB read per login, not two); a
    // change in between is caught by the heartbeat's recheck like any later change.
    let lookup: { username: string; tunnel: Promise<TunnelRecord | undefined> } | undefined;
    const tunnelNamed = (username: string) => {
      if (lookup?.username !== username) {
        const tunnel = this.deps.store.getTunnelById(username);
        const entry = { username, tunnel };
        // A failed read is not reused: the next attempt reads again.
        tunnel.catch(() => {
          if (lookup === entry) lookup = undefined;
        });
        lookup = entry;
      }
      return lookup.tunnel;
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
      void this.authenticate(ctx, tunnelNamed, (t, fingerprint) => {
        tunnel = t;
        keyFingerprint = fingerprint;
      }).then(
        (result) => {
          if (result === 'accepted' || result === 'key-ok') return;
          failures++;
          log('ssh login refused', { user: userForLog(ctx.username), method: ctx.method, reason: result });
          const delay = this.guard.recordFailure(source);
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
          ctx.reject();
          conn.end();
        },
      );
    });

    conn.on('ready', () => {
      if (pending) this.authenticated(pending);
      if (!tunnel) {
        conn.end();
        return;
      }
      const t = tunnel;
      log('ssh login accepted', { user: t.id, keyFingerprint });
      this.deps.onLogin?.(t, keyFingerprint);
      session = {
        connId,
        tunnelId: t.id,
        source,
        connectedAt: this.deps.now().toISOString(),
        keyFingerprint,
        activeChannels: () => channels,
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
      if (pending) this.authenticated(pending);
      if (!session) return;
      log('ssh connection closed', { reason: endReason?.code ?? 'closed by the customer' });
      void this.deps.registry.detach(
        session,
        endReason ?? customerNotConnected(`the session from ${source} ended`),
      );
    });
  }

  /**
   * Decides one authentication attempt. `key-ok` answers a signature-less publickey query
   * ("would this key do?"), which is not a failure; anything else but `accepted` is a reason.
   */
  private async authenticate(
    ctx: AuthContext,
    tunnelNamed: (username: string) => Promise<TunnelRecord | undefined>,
    loggedIn: (tunnel: TunnelRecord, keyFingerprint: string) => void,
  ): Promise<'accepted' | 'key-ok' | string> {
    if (ctx.method !== 'publickey') return `${ctx.method} authentication is not allowed`;
    if (!TUNNEL_ID_PATTERN.test(ctx.username)) return 'user is not a tunnel id';
    const tunnel = await tunnelNamed(ctx.username);
    if (tunnel?.type !== 'reverse') return 'no such reverse tunnel';
    if (!tunnel.enabled) return 'tunnel is disabled';
    const key = matchingKey(tunnel, ctx.key.algo, ctx.key.data);
    if (!key) return "key is not the tunnel's key";
    if (!ctx.signature || !ctx.blob) {
      ctx.accept();
      return 'key-ok';
    }
    if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return 'signature does not verify';
    loggedIn(tunnel, fingerprintOf(key.getPublicSSH()));
    ctx.accept();
    return 'accepted';
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

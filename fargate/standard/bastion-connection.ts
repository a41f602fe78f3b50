/**
 * One SSH session to a customer's bastion: resolve, SSRF guard on the resolved address, connect
 * with keepalive and a ready timeout, verify the host key against the pin, authenticate with the
 * tunnel's keys (newest first) or password. Every failure becomes a `TunnelFailure` carrying the
 * status error (code, message, hint) the customer will see.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ssh2, {
  type AgentAuthMethod,
  type AuthenticationType,
  type PasswordAuthMethod,
  type PublicKeyAuthMethod,
  type Client as SshClient,
} from 'ssh2';
import { OverloadedError } from '../../shared/errors';
import { inlineKeyCrypto } from '../../shared/key-crypto';
import { fingerprintOf } from '../../shared/keys';
import type { StatusError } from '../../shared/schemas';
import { forbiddenAddressKind } from '../../shared/ssrf';
import {
  authFailed,
  connectionLost,
  forwardDenied,
  hostKeyMismatch,
  hostPort,
  serviceUnreachableFromBastion,
  sshDnsFailed,
  sshHostForbidden,
  sshRefused,
  sshUnreachable,
} from '../../shared/status-errors';
import type { SshChannel } from '../pipe';
import { BastionKeyLoader } from './bastion-keys';

const { Client } = ssh2;

/** A failure with the status error that explains it. */
export class TunnelFailure extends Error {
  override name = 'TunnelFailure';
  constructor(
    readonly status: StatusError,
    options?: ErrorOptions,
  ) {
    super(status.message, options);
  }
}

export interface BastionTarget {
  host: string;
  port: number;
  user: string;
  /** Pinned host key; when absent any key is accepted and reported for pinning. */
  hostKeyFingerprint?: string;
}

export interface BastionCredentials {
  /** Newest first. */
  keys: { privateKey: string; passphrase?: string; fingerprint: string }[];
  password?: string;
}

export interface BastionConnectOptions {
  allowPrivateHosts: boolean;
  readyTimeoutMs: number;
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  /** Resolver (tests substitute one); defaults to the system's. */
  resolve?: (host: string) => Promise<string[]>;
  /** Told as each stage completes (the test route times them). */
  onProgress?: (stage: ConnectStage) => void;
  /**
   * Turns the tunnel's keys into auth methods, decrypting and signing on the key crypto pool (the
   * gateway's, shared by its tunnels); inline, uncached, when absent.
   */
  keys?: BastionKeyLoader;
}

/** Stages of a connection, in order: name resolved, TCP connected, SSH handshake (host key) done, authenticated. */
export type ConnectStage = 'resolved' | 'tcp' | 'handshake' | 'authenticated';

export interface BastionConnection {
  /** Fingerprint of the key that authenticated, or `password`. */
  authenticatedWith: string;
  hostKeyFingerprint: string;
  target: string;
  /** Opens a `direct-tcpip` channel to the service (RFC 4254 §7.2). */
  forward(service: { host: string; port: number }, origin: { ip: string; port: number }): Promise<SshChannel>;
  /** Resolves when the session ends, with why. */
  closed: Promise<StatusError>;
  close(): void;
}

async function systemResolve(host: string): Promise<string[]> {
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
}

/** Resolves and checks the bastion address: the one we connect to, so DNS cannot change it afterwards. */
async function resolveBastion(target: BastionTarget, options: BastionConnectOptions): Promise<string> {
  let addresses: string[];
  if (isIP(target.host)) addresses = [target.host];
  else {
    try {
      addresses = await (options.resolve ?? systemResolve)(target.host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'lookup failed';
      throw new TunnelFailure(sshDnsFailed(target.host, code), { cause: err });
    }
  }
  const [first] = addresses;
  if (!first) throw new TunnelFailure(sshDnsFailed(target.host, 'no addresses'));
  if (!options.allowPrivateHosts) {
    for (const address of addresses) {
      const kind = forbiddenAddressKind(address);
      if (kind) throw new TunnelFailure(sshHostForbidden(target.host, address, kind));
    }
  }
  return first;
}

/**
 * Rejects with `TunnelFailure`, or with `OverloadedError` when the key crypto pool cannot take the
 * key's decryption or signature now (not the bastion's fault: retry later, write no state).
 */
export async function connectToBastion(
  target: BastionTarget,
  credentials: BastionCredentials,
  options: BastionConnectOptions,
): Promise<BastionConnection> {
  const where = hostPort(target.host, target.port);
  const address = await resolveBastion(target, options);
  options.onProgress?.('resolved');
  const methods = await authMethods(
    target.user,
    credentials,
    options.keys ?? new BastionKeyLoader(inlineKeyCrypto),
  );
  const client = new Client();
  client.once('connect', () => {
    // ssh2's client leaves Nagle on: a platform connection's first bytes (channel open, then the
    // data) would wait for the bastion's delayed ACK, ~40 ms per new connection.
    client.setNoDelay(true);
    options.onProgress?.('tcp');
  });
  client.once('handshake', () => options.onProgress?.('handshake'));
  let presentedHostKey = '';
  let lastMethod = 'publickey';
  let lastKeyFingerprint = '';
  /** Keys offered, for the customer to find in the bastion's log. */
  const offeredKeys: string[] = [];

  const ready = new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    // `on`, not `once`: ssh2 can emit a second error (e.g. the socket closing after a timeout).
    client.on('error', (err: Error & { level?: string; code?: string }) => {
      if (err instanceof OverloadedError) {
        reject(err); // from the signing agent: the pool is full
      } else if (
        target.hostKeyFingerprint &&
        presentedHostKey &&
        presentedHostKey !== target.hostKeyFingerprint
      ) {
        reject(
          new TunnelFailure(hostKeyMismatch(where, target.hostKeyFingerprint, presentedHostKey), {
            cause: err,
          }),
        );
      } else if (err.level === 'agent') {
        // Our signing agent failed (the pool's worker crashed): say nothing internal to the customer.
        reject(
          new TunnelFailure(connectionLost(where, 'internal error signing with the key; retrying'), {
            cause: err,
          }),
        );
      } else if (err.level === 'client-authentication') {
        reject(
          new TunnelFailure(
            authFailed(target.user, where, lastMethod, lastMethod === 'password' ? [] : offeredKeys),
            {
              cause: err,
            },
          ),
        );
      } else if (err.code === 'ECONNREFUSED') {
        reject(new TunnelFailure(sshRefused(where), { cause: err }));
      } else if (
        err.level === 'client-timeout' ||
        /timed out/i.test(err.message) ||
        isUnreachable(err.code)
      ) {
        reject(
          new TunnelFailure(sshUnreachable(where, err.code ?? 'timed out waiting for the SSH handshake'), {
            cause: err,
          }),
        );
      } else {
        reject(new TunnelFailure(connectionLost(where, err.message), { cause: err }));
      }
    });
    client.once('close', () =>
      reject(new TunnelFailure(connectionLost(where, 'closed during the handshake'))),
    );
  });

  client.connect({
    host: address,
    port: target.port,
    username: target.user,
    readyTimeout: options.readyTimeoutMs,
    keepaliveInterval: options.keepaliveIntervalMs,
    // ssh2 gives up after countMax + 1 silent intervals; one less keeps OpenSSH's meaning (and the contract's bound).
    keepaliveCountMax: Math.max(0, options.keepaliveCountMax - 1),
    hostVerifier: (key: Buffer) => {
      presentedHostKey = fingerprintOf(key);
      return !target.hostKeyFingerprint || presentedHostKey === target.hostKeyFingerprint;
    },
    authHandler: (methodsLeft, _partial, next) => {
      const method = methods.find(
        (m) => !m.tried && (methodsLeft === null || methodsLeft.includes(m.auth.type)),
      );
      if (!method) return next(false as unknown as AuthenticationType);
      method.tried = true;
      lastMethod = method.auth.type === 'agent' ? 'publickey' : method.auth.type;
      lastKeyFingerprint = method.fingerprint;
      if (lastMethod === 'publickey') offeredKeys.push(method.fingerprint);
      return next(method.auth);
    },
  });

  try {
    await ready;
  } catch (err) {
    client.end();
    throw err;
  }
  options.onProgress?.('authenticated');

  let closeReason: StatusError = connectionLost(where, 'the bastion closed the session');
  client.on('error', (err: Error & { level?: string }) => {
    closeReason =
      err.level === 'client-timeout'
        ? connectionLost(where, 'the bastion stopped answering keepalives')
        : connectionLost(where, err.message);
  });
  const closed = new Promise<StatusError>((resolve) => client.once('close', () => resolve(closeReason)));

  return {
    authenticatedWith: lastKeyFingerprint,
    hostKeyFingerprint: presentedHostKey,
    target: where,
    closed,
    close: () => client.end(),
    forward: (service, origin) => openDirectChannel(client, where, service, origin),
  };
}

function isUnreachable(code: string | undefined): boolean {
  return ['ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN'].includes(code ?? '');
}

interface AuthMethod {
  auth: PublicKeyAuthMethod | AgentAuthMethod | PasswordAuthMethod;
  fingerprint: string;
  tried: boolean;
}

/** Keys newest first (a rotation tries the new key before the old one), then the password. */
async function authMethods(
  user: string,
  credentials: BastionCredentials,
  keys: BastionKeyLoader,
): Promise<AuthMethod[]> {
  const methods: AuthMethod[] = [];
  for (const key of credentials.keys) {
    const auth = await keys.authFor(user, key);
    if (!auth) continue;
    methods.push({ auth, fingerprint: key.fingerprint, tried: false });
  }
  if (credentials.password !== undefined) {
    methods.push({
      auth: { type: 'password', username: user, password: credentials.password },
      fingerprint: 'password',
      tried: false,
    });
  }
  return methods;
}

function openDirectChannel(
  client: SshClient,
  where: string,
  service: { host: string; port: number },
  origin: { ip: string; port: number },
): Promise<SshChannel> {
  const to = hostPort(service.host, service.port);
  return new Promise((resolve, reject) => {
    try {
      client.forwardOut(origin.ip, origin.port, service.host, service.port, (err, channel) => {
        if (!err) {
          resolve(channel as unknown as SshChannel);
          return;
        }
        // RFC 4254 §5.1 reason codes: 1 administratively prohibited, 2 connect failed.
        const reason = (err as Error & { reason?: number }).reason;
        const status =
          reason === 1
            ? forwardDenied(where, to)
            : serviceUnreachableFromBastion(where, to, err.message.replace(/^\(SSH\) /, ''));
        reject(new TunnelFailure(status, { cause: err }));
      });
    } catch (err) {
      // forwardOut throws synchronously when the session is already gone.
      reject(new TunnelFailure(connectionLost(where, (err as Error).message), { cause: err }));
    }
  });
}

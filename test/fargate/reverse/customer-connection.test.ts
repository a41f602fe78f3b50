/**
 * Every authentication attempt and every request that wants an answer gets exactly one from a
 * customer connection (accept or reject, or a disconnect that ends the connection), counted as
 * ssh2's own tests count callbacks: across success, refusal, internal errors and a client that
 * leaves before its answer is ready. A real ssh2 server (our socket handed to it as the endpoint
 * does) and a real ssh2 client, the tunnel stored in DynamoDB Local; the callbacks ssh2 emits are
 * wrapped on their way to `CustomerConnection`, so the production wiring is what is counted.
 */

import { createServer, type Server, type Socket } from 'node:net';
import ssh2, { type ClientChannel, type Connection, type Client as SshClient } from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AdmittedSocket, CustomerConnection } from '../../../fargate/reverse/customer-connection';
import { ForwardRegistry } from '../../../fargate/reverse/forward-registry';
import { TunnelCache } from '../../../fargate/reverse/tunnel-cache';
import { TunnelLookup } from '../../../fargate/reverse/tunnel-lookup';
import { TunnelSessions } from '../../../fargate/reverse/tunnel-sessions';
import { StateWriter } from '../../../fargate/state-writer';
import { issueApiKey } from '../../../shared/api-keys';
import { StorageUnavailableError } from '../../../shared/errors';
import { newTunnelId, newWorkspaceId } from '../../../shared/ids';
import { generateKeyPair } from '../../../shared/keys';
import { createLogger } from '../../../shared/logger';
import { DynamoGatewayStore } from '../../../shared/store/dynamo-gateway-store';
import type { TunnelRecord } from '../../../shared/tunnel';
import { sshKeygen } from '../../helpers/customer';
import { createTestTable } from '../../helpers/dynamo';
import { waitFor } from '../../helpers/wait-for';

const { Client, Server: SshServer } = ssh2;
const PORTS = { from: 15000, to: 15099 };
const MAX_AUTH_ATTEMPTS = 3;

/** One thing that must be answered once: how many times each of its answers was called. */
interface Ask {
  what: string;
  calls: number;
  /** Answered by ending the connection with a reason instead (RFC 4253 §11.1). */
  disconnected?: boolean;
}

/** How the next tunnel read behaves. */
type ReadMode = 'store' | 'error' | 'outage' | { gate: Promise<void> };

describe('CustomerConnection answers every attempt and request exactly once', () => {
  let table: Awaited<ReturnType<typeof createTestTable>>;
  let net: Server;
  let port: number;
  let tunnel: TunnelRecord;
  let tunnelKey: { privateKey: string; publicKey: string };
  let strangerKey: { privateKey: string; publicKey: string };
  let hostPublicKey: Buffer;
  let readMode: ReadMode = 'store';
  const asks: Ask[] = [];
  const logs: Record<string, unknown>[] = [];
  const clients: SshClient[] = [];
  const serverSide: { conn: Connection; closed: boolean }[] = [];

  /** Wraps `fns` so that their calls are counted together as one ask. */
  function counted<F extends ((...args: never[]) => unknown) | undefined>(what: string, ...fns: F[]): F[] {
    if (fns.every((f) => f === undefined)) return fns; // nothing to answer (no want-reply)
    const ask: Ask = { what, calls: 0 };
    asks.push(ask);
    return fns.map((fn) =>
      fn === undefined
        ? fn
        : (((...args: never[]) => {
            ask.calls++;
            return fn(...args);
          }) as F),
    );
  }

  /** Counts what ssh2 hands the connection's listeners, then lets them have it. */
  function instrument(conn: Connection): void {
    const emit = conn.emit.bind(conn);
    conn.emit = ((event: string, ...args: unknown[]) => {
      if (event === 'authentication') {
        const ctx = args[0] as { method: string; accept: () => void; reject: () => void };
        const [accept, reject] = counted(`auth ${ctx.method}`, ctx.accept.bind(ctx), ctx.reject.bind(ctx));
        if (accept && reject) Object.assign(ctx, { accept, reject });
      } else if (event === 'request') {
        const [accept, reject] = counted(
          `request ${String(args[2])}`,
          args[0] as (() => void) | undefined,
          args[1] as (() => void) | undefined,
        );
        args[0] = accept;
        args[1] = reject;
      } else if (event === 'session') {
        const [accept, reject] = counted('session', args[0] as () => ssh2.Session, args[1] as () => void);
        args[0] = () => {
          const session = accept?.();
          if (session) instrumentSession(session);
          return session;
        };
        args[1] = reject;
      } else if (event === 'tcpip' || event === 'openssh.streamlocal') {
        const [accept, reject] = counted(event, args[0] as () => unknown, args[1] as () => void);
        args[0] = accept;
        args[1] = reject;
      }
      return emit(event, ...args);
    }) as typeof conn.emit;
  }

  function instrumentSession(session: ssh2.Session): void {
    const emit = session.emit.bind(session);
    session.emit = ((event: string, ...args: unknown[]) => {
      if (['shell', 'exec', 'subsystem', 'pty', 'env', 'auth-agent', 'x11'].includes(event)) {
        const [accept, reject] = counted(
          `session ${event}`,
          args[0] as (() => unknown) | undefined,
          args[1] as (() => void) | undefined,
        );
        args[0] = accept;
        args[1] = reject;
      }
      return emit(event, ...args);
    }) as typeof session.emit;
  }

  beforeAll(async () => {
    table = await createTestTable();
    const gatewayStore = new DynamoGatewayStore(table.doc, table.tableName);
    const logger = createLogger('debug', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
    tunnelKey = await sshKeygen('ed25519');
    strangerKey = await sshKeygen('ed25519');
    const hostKey = await generateKeyPair('ecdsa', 'test-endpoint');
    const parsedHostKey = ssh2.utils.parseKey(hostKey.publicKey);
    if (parsedHostKey instanceof Error || Array.isArray(parsedHostKey))
      throw new Error('host key does not parse');
    hostPublicKey = parsedHostKey.getPublicSSH();
    const workspaceId = newWorkspaceId();
    await table.store.createWorkspace(
      { id: workspaceId, name: 'acme', createdAt: new Date().toISOString() },
      issueApiKey(new Date().toISOString()).record,
    );
    const at = new Date().toISOString();
    tunnel = await table.store.createTunnel(
      {
        id: newTunnelId(),
        workspaceId,
        name: 'counted',
        type: 'reverse',
        enabled: true,
        createdAt: at,
        updatedAt: at,
        service: { host: '127.0.0.1', port: 5432 },
        publicKey: tunnelKey.publicKey,
        publicKeyFingerprint: 'SHA256:not-checked-here',
      },
      PORTS,
    );

    const now = () => new Date();
    const registry = new ForwardRegistry({
      workerId: 'wk_counted',
      bindHost: '127.0.0.1',
      connectHost: '127.0.0.1',
      maxChannelsPerTunnel: 16,
      dataIdleTimeoutMs: 60_000,
      takeoverDrainMs: 500,
      logger,
      stateWriter: new StateWriter(gatewayStore, logger),
      now,
    });
    const lookup = new TunnelLookup({
      read: async (id) => {
        const mode = readMode;
        if (mode === 'error') throw new Error('a bug in the read');
        if (mode === 'outage') throw new StorageUnavailableError('unreachable');
        if (mode !== 'store') await mode.gate;
        return gatewayStore.getTunnelById(id);
      },
      // No cache: an outage must show as one, not be answered from a copy.
      cache: new TunnelCache({ maxTunnels: 0, ttlMs: 0 }),
      timeoutMs: 5_000,
      maxInFlight: 16,
    });
    const context = {
      logger,
      lookup,
      sessions: new TunnelSessions(1),
      registry,
      keepaliveIntervalMs: 15_000,
      keepaliveCountMax: 3,
      maxAuthAttempts: MAX_AUTH_ATTEMPTS,
      now,
    };
    const sockets = new Map<string, Socket>();
    const ssh = new SshServer({ hostKeys: [hostKey.privateKey] }, (conn, info) => {
      instrument(conn);
      const side = { conn, closed: false };
      serverSide.push(side);
      conn.once('close', () => {
        side.closed = true;
      });
      const socket = sockets.get(`${info.ip}:${info.port}`);
      const admitted: AdmittedSocket | undefined = socket && {
        socket,
        loginFailed: () => 0,
        settled: () => {},
      };
      new CustomerConnection(conn, info.ip, admitted, context).listen();
    });
    net = createServer((socket) => {
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      sockets.set(key, socket);
      socket.on('error', () => {});
      socket.once('close', () => sockets.delete(key));
      ssh.injectSocket(socket);
    });
    await new Promise<void>((resolve) => net.listen(0, '127.0.0.1', resolve));
    const address = net.address();
    if (!address || typeof address !== 'object') throw new Error('no address');
    port = address.port;
  });

  afterEach(async () => {
    readMode = 'store';
    for (const client of clients.splice(0)) client.end();
    await waitFor(() => serverSide.every((s) => s.closed), 10_000, { what: 'every connection closed' });
    // Answers given late (a delayed refusal, a read that came back) have had their chance.
    const answers = (a: Ask) => a.calls + (a.disconnected ? 1 : 0);
    try {
      await waitFor(() => asks.every((a) => answers(a) >= 1), 10_000, {
        what: `every ask answered (${JSON.stringify(asks.filter((a) => answers(a) === 0))})`,
      });
      expect(asks.filter((a) => answers(a) !== 1)).toEqual([]);
    } finally {
      asks.splice(0);
    }
  });

  afterAll(async () => {
    await new Promise((resolve) => net?.close(resolve));
    await table?.drop();
  });

  /** Connects with `auth` tried in order; resolves when ready, or with why not. */
  function connect(
    auth: ssh2.AnyAuthMethod[],
    options: { onConnected?: (client: SshClient) => void } = {},
  ): Promise<{ client: SshClient; ready: boolean; error?: Error & { code?: number } }> {
    return new Promise((resolve) => {
      const client = new Client();
      clients.push(client);
      const queue = [...auth];
      let error: (Error & { code?: number }) | undefined;
      client.on('ready', () => resolve({ client, ready: true }));
      client.on('error', (err) => {
        error = err;
      });
      client.on('close', () => resolve({ client, ready: false, error }));
      client.once('handshake', () => options.onConnected?.(client));
      client.connect({
        host: '127.0.0.1',
        port,
        username: auth[0]?.username ?? tunnel.id,
        hostVerifier: (key: Buffer) => key.equals(hostPublicKey),
        authHandler: (_left, _partial, next) =>
          next((queue.shift() ?? false) as ssh2.AnyAuthMethod | ssh2.AuthenticationType),
      });
    });
  }

  /** The client saw our disconnect: the unanswered attempts of `what` were answered by it. */
  const answeredByDisconnect = (what: string) => {
    const unanswered = asks.filter((a) => a.what === what && a.calls === 0);
    expect(unanswered.length).toBeGreaterThan(0);
    for (const ask of unanswered) ask.disconnected = true;
  };

  const withKey = (privateKey: string, username = tunnel.id): ssh2.AnyAuthMethod => ({
    type: 'publickey',
    username,
    key: privateKey,
  });

  const request = (fn: (cb: (err?: Error | null) => void) => void) =>
    new Promise<Error | undefined>((resolve) => fn((err) => resolve(err ?? undefined)));
  const channel = (fn: (cb: (err: Error | undefined, ch: ClientChannel) => void) => void) =>
    new Promise<{ err?: Error; ch?: ClientChannel }>((resolve) =>
      fn((err, ch) => resolve(err ? { err } : { ch })),
    );

  it('a session that logs in and asks for everything: each request answered once', async () => {
    const { client, ready } = await connect([
      { type: 'none', username: tunnel.id },
      withKey(tunnelKey.privateKey),
    ]);
    expect(ready).toBe(true);
    expect(await request((cb) => client.forwardIn('localhost', tunnel.port, cb))).toBeUndefined();
    expect(await request((cb) => client.forwardIn('localhost', tunnel.port + 1, cb))).toBeInstanceOf(Error);
    expect(await request((cb) => client.openssh_forwardInStreamLocal('/tmp/x.sock', cb))).toBeInstanceOf(
      Error,
    );
    const exec = await channel((cb) => client.exec('cat /etc/passwd', cb));
    expect(exec.ch).toBeDefined();
    const stderr = await new Promise<string>((resolve) => {
      let text = '';
      exec.ch?.stderr.on('data', (d: Buffer) => {
        text += d.toString();
      });
      exec.ch?.on('close', () => resolve(text));
      exec.ch?.resume();
    });
    expect(stderr).toContain('run ssh with -N');
    expect(
      (await channel((cb) => client.forwardOut('127.0.0.1', 1, '127.0.0.1', 5432, cb))).err,
    ).toBeDefined();
    expect(
      (await channel((cb) => client.openssh_forwardOutStreamLocal('/tmp/x.sock', cb))).err,
    ).toBeDefined();
    expect(await request((cb) => client.unforwardIn('localhost', tunnel.port, cb))).toBeUndefined();
    const whats = asks.map((a) => a.what);
    for (const what of [
      'auth none',
      'auth publickey',
      'request tcpip-forward',
      'request streamlocal-forward@openssh.com',
      'session',
      'session exec',
      'tcpip',
      'openssh.streamlocal',
      'request cancel-tcpip-forward',
    ]) {
      expect(whats).toContain(what);
    }
  });

  it('refusals: another key, a password, keyboard-interactive, a user that is no tunnel, too many attempts', async () => {
    const mark = logs.length;
    const refused = await connect([
      withKey(strangerKey.privateKey),
      { type: 'password', username: tunnel.id, password: 'hunter2' },
      {
        type: 'keyboard-interactive',
        username: tunnel.id,
        prompt: (_n, _i, _l, prompts, finish) => finish(prompts.map(() => 'hunter2')),
      },
      withKey(tunnelKey.privateKey), // past MAX_AUTH_ATTEMPTS: refused if it arrives at all
    ]);
    expect(refused.ready).toBe(false);
    const attempts = asks.filter((a) => a.what !== 'auth none').map((a) => a.what);
    // ssh2's client may send its next attempt before our closing refusal reaches it: refused too.
    expect(attempts.slice(0, 3)).toEqual(['auth publickey', 'auth password', 'auth keyboard-interactive']);
    expect(attempts.slice(3)).toEqual(attempts.length === 4 ? ['auth publickey'] : []);
    const since = logs.slice(mark);
    expect(
      since.filter((l) => l.msg === 'ssh connection closed' && /too many failed/.test(String(l.reason))),
    ).toHaveLength(1);
    expect(since.filter((l) => l.msg === 'ssh login accepted')).toEqual([]);

    const before = asks.length;
    const notATunnel = await connect([withKey(tunnelKey.privateKey, 'root')]);
    expect(notATunnel.ready).toBe(false);
    expect(asks.slice(before).map((a) => a.what)).toContain('auth publickey');
    expect(logs.filter((l) => l.reason === 'user is not a tunnel id').length).toBeGreaterThan(0);
  });

  it.each([
    ['an internal error', 'error' as const, undefined, /internal error/],
    ['storage out', 'outage' as const, 7, /temporarily unavailable/],
  ])('%s ends the connection with its reason instead of an answer', async (_name, mode, code, text) => {
    readMode = mode;
    const result = await connect([withKey(tunnelKey.privateKey)]);
    expect(result.ready).toBe(false);
    if (code !== undefined) {
      expect(result.error?.code).toBe(code);
      expect(result.error?.message).toMatch(text);
    }
    expect(
      logs.some((l) => l.msg === 'ssh login refused' && l.disconnectCode !== undefined) || mode === 'error',
    ).toBe(true);
    answeredByDisconnect('auth publickey');
  });

  it('a second session beyond the limit is disconnected; a forward whose port is taken is refused', async () => {
    const first = await connect([withKey(tunnelKey.privateKey)]);
    expect(first.ready).toBe(true);
    const second = await connect([withKey(tunnelKey.privateKey)]);
    expect(second.ready).toBe(false);
    expect(second.error?.code).toBe(12);
    answeredByDisconnect('auth publickey');

    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(tunnel.port, '127.0.0.1', resolve));
    try {
      expect(await request((cb) => first.client.forwardIn('localhost', tunnel.port, cb))).toBeInstanceOf(
        Error,
      );
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it.each([
    ['the tunnel key (a "would this key do?" then a signed attempt)', () => tunnelKey.privateKey],
    ['another key', () => strangerKey.privateKey],
  ])(
    'a client that leaves while its login is being checked still gets one answer: %s',
    async (_name, key) => {
      let open: () => void = () => {};
      readMode = { gate: new Promise<void>((resolve) => (open = resolve)) };
      const leaving = connect([withKey(key())], {
        onConnected: (client) => {
          // Gone as soon as its attempt is with us and waiting for the tunnel read.
          void waitFor(() => asks.some((a) => a.what === 'auth publickey'), 5_000).then(() =>
            client.destroy(),
          );
        },
      });
      const result = await leaving;
      expect(result.ready).toBe(false);
      await waitFor(() => serverSide.every((s) => s.closed), 5_000, { what: 'the server saw it leave' });
      open();
      await waitFor(() => asks.every((a) => a.calls > 0), 5_000, { what: 'the late answer' });
      // Nothing of the login that left is still counted: the one session allowed is free.
      readMode = 'store';
      expect((await connect([withKey(tunnelKey.privateKey)])).ready).toBe(true);
    },
  );
});

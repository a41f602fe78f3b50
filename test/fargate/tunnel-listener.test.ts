/**
 * The tunnel listener keeps count of the connections each opener carries, so the session a key
 * rotation replaced knows when its own connections have ended while new ones go to the new one.
 * Real sockets on loopback; the "channels" are TCP connections to an echo service.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChannelOpener, TunnelListener } from '../../fargate/tunnel-listener';
import { freePort } from '../../local/free-port';
import { createLogger } from '../../shared/logger';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { waitFor } from '../helpers/wait-for';

describe('TunnelListener connections by opener', () => {
  let echo: EchoServer;
  let listener: TunnelListener;
  let port: number;
  const clients: Socket[] = [];

  beforeAll(async () => {
    echo = await startEchoServer();
    port = await freePort();
    listener = new TunnelListener({
      tunnelId: 'tun_aaaaaaaaaaaaaaaa',
      host: '127.0.0.1',
      port,
      maxChannels: 16,
      idleTimeoutMs: 60_000,
      logger: createLogger('error', () => {}),
    });
    await listener.listen();
  });

  afterAll(async () => {
    for (const c of clients) c.destroy();
    await listener.close();
    await echo.close();
  });

  const opener = (): ChannelOpener => () =>
    new Promise((resolve, reject) => {
      const channel = connect(echo.port, '127.0.0.1', () => resolve(channel));
      channel.once('error', reject);
    });

  /** A platform client through the tunnel, once its bytes come back. */
  async function client(): Promise<Socket> {
    const socket = connect(port, '127.0.0.1');
    clients.push(socket);
    socket.on('error', () => {});
    await new Promise<void>((resolve) => {
      socket.once('data', () => resolve());
      socket.write('ping');
    });
    return socket;
  }

  it('counts what each opener carries and tells when the replaced one has none left', async () => {
    const old = opener();
    listener.setOpener(old);
    expect(listener.currentOpener).toBe(old);
    const [a, b] = [await client(), await client()];
    const next = opener();
    listener.setOpener(next);
    const c = await client();
    expect(listener.connectionsVia(old)).toBe(2);
    expect(listener.connectionsVia(next)).toBe(1);

    let drained = false;
    const whenDrained = listener.whenDrained(old).then(() => {
      drained = true;
    });
    a.destroy();
    await waitFor(() => listener.connectionsVia(old) === 1, 5_000, {
      what: 'one of the old connections gone',
    });
    expect(drained).toBe(false);
    b.destroy();
    await whenDrained;
    expect(listener.connectionsVia(old)).toBe(0);
    // The new opener's connection is untouched, and one that never carried anything is drained at once.
    expect(listener.connectionsVia(next)).toBe(1);
    expect(c.destroyed).toBe(false);
    await listener.whenDrained(opener());
  });
});

describe('TunnelListener holding connections for a takeover', () => {
  let echo: EchoServer;
  const listeners: TunnelListener[] = [];
  const clients: Socket[] = [];

  beforeAll(async () => {
    echo = await startEchoServer();
  });

  afterAll(async () => {
    for (const c of clients) c.destroy();
    for (const l of listeners) await l.close();
    await echo.close();
  });

  async function holdingListener(holdMs: number): Promise<{ listener: TunnelListener; port: number }> {
    const port = await freePort();
    const listener = new TunnelListener({
      tunnelId: 'tun_bbbbbbbbbbbbbbbb',
      host: '127.0.0.1',
      port,
      maxChannels: 16,
      idleTimeoutMs: 60_000,
      logger: createLogger('error', () => {}),
      holdForFirstOpenerMs: holdMs,
    });
    listeners.push(listener);
    await listener.listen();
    return { listener, port };
  }

  const toEcho: ChannelOpener = () =>
    new Promise((resolve, reject) => {
      const channel = connect(echo.port, '127.0.0.1', () => resolve(channel));
      channel.once('error', reject);
    });

  /** What a client that connected and wrote `ping` gets: the echo, or the end of the connection. */
  function pingOutcome(port: number): { outcome: Promise<'echoed' | 'closed'>; socket: Socket } {
    const socket = connect(port, '127.0.0.1');
    clients.push(socket);
    socket.on('error', () => {});
    socket.write('ping');
    const outcome = new Promise<'echoed' | 'closed'>((resolve) => {
      socket.once('data', () => resolve('echoed'));
      socket.once('close', () => resolve('closed'));
    });
    return { outcome, socket };
  }

  it('carries a connection that came before the first session once that session is there', async () => {
    const { listener, port } = await holdingListener(10_000);
    const early = pingOutcome(port);
    await waitFor(() => listener.activeConnections === 1, 5_000, { what: 'the early connection held' });
    let settled = false;
    void early.outcome.then(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(settled).toBe(false); // held, not refused
    listener.setOpener(toEcho);
    expect(await early.outcome).toBe('echoed');
    expect(listener.connectionsVia(toEcho)).toBe(1);
  });

  it('ends a held connection when no session comes within the hold, and holds none after the first session', async () => {
    const { listener, port } = await holdingListener(300);
    const started = Date.now();
    expect(await pingOutcome(port).outcome).toBe('closed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    listener.setOpener(toEcho);
    listener.setOpener(undefined);
    // The tunnel had its session: a connection while it has none fails at once, as without a hold.
    const refusedAt = Date.now();
    expect(await pingOutcome(port).outcome).toBe('closed');
    expect(Date.now() - refusedAt).toBeLessThan(250);
  });
});

/**
 * joinSocketAndChannel with a real ssh2 server and client in process: a platform socket's
 * half-close must reach the customer side after every byte it sent, even when those bytes are
 * still waiting for SSH window when the socket ends.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server as NetServer, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import { afterEach, describe, expect, it } from 'vitest';
import { joinSocketAndChannel, type SshChannel } from '../../fargate/pipe';
import { generateKeyPair } from '../../shared/keys';
import { withTimeout } from '../helpers/wait-for';

const { Client, Server, utils } = ssh2;
const MiB = 1024 * 1024;

describe('joinSocketAndChannel', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  /** An ssh2 server whose first direct-tcpip channel is handed out, and a client connected to it. */
  async function sshPair() {
    const hostKey = await generateKeyPair('ed25519', 'pipe-test host');
    let resolveChannel: (channel: SshChannel) => void = () => {};
    const serverChannel = new Promise<SshChannel>((resolve) => {
      resolveChannel = resolve;
    });
    const server = new Server({ hostKeys: [hostKey.privateKey] }, (conn) => {
      conn.on('error', () => {});
      conn.on('authentication', (ctx) => ctx.accept());
      conn.on('tcpip', (accept) => resolveChannel(accept() as unknown as SshChannel));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const client = new Client();
    cleanups.push(() => {
      client.end();
      server.close();
    });
    const parsedHostKey = utils.parseKey(hostKey.publicKey);
    if (parsedHostKey instanceof Error) throw parsedHostKey;
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve()).once('error', reject);
      client.connect({
        host: '127.0.0.1',
        port: (server.address() as { port: number }).port,
        username: 'test',
        hostVerifier: (key: Buffer) => key.equals(parsedHostKey.getPublicSSH()),
      });
    });
    return { client, serverChannel };
  }

  /** A connected TCP pair: `platform` (the workload) and `gateway` (accepted by us). */
  async function tcpPair(): Promise<{ platform: Socket; gateway: Socket }> {
    const server: NetServer = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const platform = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1' });
    const [gateway] = await accepted;
    cleanups.push(() => {
      platform.destroy();
      gateway.destroy();
      server.close();
    });
    return { platform, gateway };
  }

  it('sends EOF after the data still queued for window, not ahead of it', async () => {
    const { client, serverChannel } = await sshPair();
    // The customer side does not read yet: its window (2 MiB, plus one adjustment) fills up.
    const customerSide = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.forwardOut('127.0.0.1', 1, '127.0.0.1', 2, (err, stream) => {
        if (err) reject(err);
        else {
          stream.pause();
          resolve(stream);
        }
      }),
    );
    const channel = await serverChannel;
    const { platform, gateway } = await tcpPair();
    joinSocketAndChannel(gateway, channel, { idleTimeoutMs: 60_000 });

    // More than the window lets through, less than the window plus the channel's own buffer: the
    // socket reads it all and ends while the channel still holds the tail.
    const payload = randomBytes(3.5 * MiB);
    const gatewayEnded = once(gateway, 'end');
    platform.end(payload);
    await withTimeout(gatewayEnded, 10_000, 'platform half-close reaching the gateway');
    expect(channel.writableLength).toBeGreaterThan(0);

    const received: Buffer[] = [];
    customerSide.on('data', (chunk: Buffer) => received.push(chunk));
    const customerEnded = once(customerSide, 'end');
    customerSide.resume();
    await withTimeout(customerEnded, 10_000, 'EOF on the customer side');
    const all = Buffer.concat(received);
    expect(all.length).toBe(payload.length);
    expect(all.equals(payload)).toBe(true);
  });

  it('closes both ends once neither side has sent a byte for the idle timeout, and not before', async () => {
    const { client, serverChannel } = await sshPair();
    const customerSide = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.forwardOut('127.0.0.1', 1, '127.0.0.1', 2, (err, stream) =>
        err ? reject(err) : resolve(stream),
      ),
    );
    const channel = await serverChannel;
    const { platform, gateway } = await tcpPair();
    // Both ends read what they get (a channel closes only once its readable side is consumed).
    customerSide.resume();
    platform.resume();
    let idled = 0;
    const idleTimeoutMs = 400;
    joinSocketAndChannel(gateway, channel, { idleTimeoutMs, onIdle: () => idled++ });

    // Traffic one way, then the other, keeps it open well past the timeout.
    const started = Date.now();
    for (let i = 0; i < 6; i++) {
      await new Promise((resolve) => setTimeout(resolve, idleTimeoutMs / 2));
      if (i % 2 === 0) platform.write('ping');
      else customerSide.write('pong');
    }
    expect(Date.now() - started).toBeGreaterThan(idleTimeoutMs);
    expect(idled).toBe(0);
    expect(gateway.destroyed).toBe(false);

    // Then silence both ways: the platform connection and the channel are closed.
    const customerClosed = once(customerSide, 'close');
    const platformClosed = once(platform, 'close');
    await withTimeout(Promise.all([customerClosed, platformClosed]), 5_000, 'idle connection closed');
    expect(idled).toBe(1);
  });
});

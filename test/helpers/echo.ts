/**
 * A TCP echo service (the customer's "database" in tunnel tests) and clients that push checksummed
 * random data through a connection and compare what comes back.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';

export interface EchoServer {
  port: number;
  /** Connections currently open on the service side. */
  readonly openConnections: number;
  /** Connections accepted since start. */
  readonly acceptedConnections: number;
  close(): Promise<void>;
}

/** Echoes every byte back; a half-close from the client is answered once everything is echoed. */
export async function startEchoServer(host = '127.0.0.1'): Promise<EchoServer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
    socket.pipe(socket); // pipe ends our side when the client's side ends: the half-close travels back
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('echo server has no address');
  return {
    port: address.port,
    get openConnections() {
      return sockets.size;
    },
    get acceptedConnections() {
      return accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface RoundTrip {
  sentBytes: number;
  receivedBytes: number;
  sentSha256: string;
  receivedSha256: string;
  ms: number;
}

/**
 * Connects, writes `totalBytes` of random data (respecting backpressure), half-closes, and reads
 * until the other side ends. Rejects on a socket error, an early close, or after `timeoutMs`.
 */
export function echoRoundTrip(
  host: string,
  port: number,
  totalBytes: number,
  timeoutMs: number,
  chunkBytes = 256 * 1024,
): Promise<RoundTrip> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const sent = createHash('sha256');
    const received = createHash('sha256');
    let sentBytes = 0;
    let receivedBytes = 0;
    const socket = connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `round trip of ${totalBytes} bytes timed out: sent ${sentBytes}, received ${receivedBytes}`,
        ),
      );
    }, timeoutMs);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('data', (chunk: Buffer) => {
      received.update(chunk);
      receivedBytes += chunk.length;
    });
    socket.once('end', () => {
      clearTimeout(timer);
      socket.end();
      resolve({
        sentBytes,
        receivedBytes,
        sentSha256: sent.digest('hex'),
        receivedSha256: received.digest('hex'),
        ms: performance.now() - started,
      });
    });
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`connection closed early: sent ${sentBytes}, received ${receivedBytes}`));
    });
    const writeMore = () => {
      while (sentBytes < totalBytes) {
        const chunk = randomBytes(Math.min(chunkBytes, totalBytes - sentBytes));
        sent.update(chunk);
        sentBytes += chunk.length;
        if (!socket.write(chunk)) {
          socket.once('drain', writeMore);
          return;
        }
      }
      socket.end(); // half-close: the echo service answers with its own end once done
    };
    socket.once('connect', writeMore);
  });
}

/** One short echo exchange: true only if the same 32 bytes came back within `timeoutMs`. */
export function echoProbe(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const nonce = randomBytes(32);
    let got = Buffer.alloc(0);
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('error', () => done(false));
    socket.once('close', () => done(got.equals(nonce)));
    socket.once('connect', () => socket.write(nonce));
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= nonce.length) done(got.equals(nonce));
    });
  });
}

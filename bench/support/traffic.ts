/**
 * The traffic driven through every tunnel: a customer-side service (what `ssh -R` / `-L` forward
 * to) and the platform-side clients that connect through the tunnel. The first byte of a
 * connection picks its role, so one service serves every measurement:
 *   'E'  echo every byte back (the 1-byte new-connection probe);
 *   'T'  timed transfer: 'T', 'U' (platform → service) or 'D' (service → platform), 6-byte length.
 *        The service answers 'R' once the header is in (the channel is open end to end, so
 *        connection set-up is not timed); for 'U' the client then sends the bytes and the service
 *        answers 'K' when all arrived; for 'D' the client sends 'G' and the service streams them.
 * Data is one random MiB written again and again: SSH does not compress here, and generating
 * or hashing bytes would only burn the CPU the tunnels need (integrity is the tests' job).
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';

const BLOCK = randomBytes(1024 * 1024);
const HEADER_BYTES = 8;

export interface CustomerService {
  port: number;
  close(): Promise<void>;
}

/** Starts the customer-side service on a loopback port. */
export async function startCustomerService(): Promise<CustomerService> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
    serve(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('customer service has no address');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function serve(socket: Socket): void {
  let head: Buffer = Buffer.alloc(0);
  const onHead = (chunk: Buffer) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    if (head[0] === 0x45 /* E */) {
      socket.off('data', onHead);
      socket.write(head);
      socket.pipe(socket);
      return;
    }
    if (head[0] !== 0x54 /* T */) {
      socket.destroy();
      return;
    }
    if (head.length < HEADER_BYTES) return;
    socket.off('data', onHead);
    const direction = String.fromCharCode(head[1] ?? 0);
    const length = head.readUIntBE(2, 6);
    const rest = head.subarray(HEADER_BYTES);
    if (direction === 'U') receive(socket, length, rest.length);
    else if (direction === 'D') socket.once('data', () => sendBytes(socket, length, () => socket.end()));
    else socket.destroy();
    socket.write('R');
  };
  socket.on('data', onHead);
}

function receive(socket: Socket, length: number, already: number): void {
  let received = already;
  const check = () => {
    if (received < length) return false;
    socket.off('data', onData);
    socket.end('K');
    return true;
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    check();
  };
  if (!check()) socket.on('data', onData);
}

/** Writes `length` bytes with backpressure, then calls `done`. */
function sendBytes(socket: Socket, length: number, done: () => void): void {
  let left = length;
  const more = () => {
    while (left > 0) {
      const chunk = left >= BLOCK.length ? BLOCK : BLOCK.subarray(0, left);
      left -= chunk.length;
      if (!socket.write(chunk)) {
        socket.once('drain', more);
        return;
      }
    }
    done();
  };
  more();
}

function open(port: number, timeoutMs: number, what: string): { socket: Socket; failed: Promise<never> } {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true, allowHalfOpen: true });
  const failed = new Promise<never>((_, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${what} on port ${port}: no result within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`${what} on port ${port}: connection closed early`));
    });
    socket.once('error', (err) => reject(new Error(`${what} on port ${port}: ${err.message}`)));
  });
  failed.catch(() => {});
  return { socket, failed };
}

/** Connects and exchanges one byte: milliseconds from connect() to the byte coming back. */
export async function connectAndEcho(port: number, timeoutMs = 5_000): Promise<number> {
  const started = performance.now();
  const { socket, failed } = open(port, timeoutMs, 'connect and echo');
  try {
    const echoed = new Promise<number>((resolve) => {
      socket.once('data', () => resolve(performance.now() - started));
    });
    socket.once('connect', () => socket.write('E'));
    return await Promise.race([echoed, failed]);
  } finally {
    socket.destroy();
  }
}

/** Moves `bytes` through the tunnel at `port` in one direction; returns the milliseconds it took. */
export async function transfer(
  port: number,
  direction: 'U' | 'D',
  bytes: number,
  timeoutMs: number,
): Promise<number> {
  const { socket, failed } = open(port, timeoutMs, `transfer ${direction} of ${bytes} bytes`);
  try {
    const header = Buffer.alloc(HEADER_BYTES);
    header.write('T', 0);
    header.write(direction, 1);
    header.writeUIntBE(bytes, 2, 6);
    socket.write(header);
    const done = new Promise<number>((resolve) => {
      let started = 0;
      let received = 0;
      socket.once('data', (ready: Buffer) => {
        started = performance.now();
        if (direction === 'U') {
          socket.once('data', () => resolve(performance.now() - started));
          sendBytes(socket, bytes, () => {});
          return;
        }
        received = ready.length - 1;
        socket.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received >= bytes) resolve(performance.now() - started);
        });
        socket.write('G');
      });
    });
    return await Promise.race([done, failed]);
  } finally {
    socket.destroy();
  }
}

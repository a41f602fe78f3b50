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
 *
 * Both ends read into one reused buffer (`onread`) instead of a fresh 64 KiB Buffer per read:
 * at 600 MB/s those allocations made V8 run a full GC every ~100 ms ("external memory pressure")
 * and the bench's own ends cost more CPU per GB than the server under test, on the same cores.
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, Socket } from 'node:net';

const BLOCK = randomBytes(1024 * 1024);
const HEADER_BYTES = 8;
/** Every read of every bench socket lands here; callbacks consume it before the next read. */
const READ_BUFFER = Buffer.allocUnsafe(1024 * 1024);

type OnRead = (chunk: Buffer) => void;

/** Hands `onread`'s bytes to a handler; true keeps reading. */
function delivered(onRead: OnRead, n: number, buf: Uint8Array): boolean {
  onRead(Buffer.from(buf.buffer, buf.byteOffset, n));
  return true;
}

export interface CustomerService {
  port: number;
  close(): Promise<void>;
}

/** Starts the customer-side service on a loopback port. */
export async function startCustomerService(): Promise<CustomerService> {
  const sockets = new Set<Socket>();
  // pauseOnConnect: no read happens before the handle moves to a socket that reads with onread
  // (net.Server has no onread option of its own).
  const server: Server = createServer(
    { noDelay: true, allowHalfOpen: true, pauseOnConnect: true },
    (accepted) => {
      const handle = (accepted as unknown as { _handle: unknown })._handle;
      (accepted as unknown as { _handle: unknown })._handle = null;
      let onRead: OnRead = () => {};
      const socket = new Socket({
        handle,
        allowHalfOpen: true,
        readable: true,
        writable: true,
        onread: {
          buffer: READ_BUFFER,
          callback: (n: number, buf: Uint8Array) => delivered(onRead, n, buf),
        },
      } as ConstructorParameters<typeof Socket>[0]);
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on('error', () => {});
      // The client's EOF ends ours too (allowHalfOpen would keep each tunnel channel open for good).
      socket.once('end', () => socket.end());
      socket.once('close', () => {
        sockets.delete(socket);
        accepted.destroy(); // the server counts the socket it accepted: let server.close() finish
      });
      serve(socket, (handler) => {
        onRead = handler;
      });
      socket.resume();
    },
  );
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

function serve(socket: Socket, setOnRead: (handler: OnRead) => void): void {
  let head: Buffer = Buffer.alloc(0);
  setOnRead((chunk) => {
    head = Buffer.concat([head, chunk]); // copied: the read buffer is reused
    if (head[0] === 0x45 /* E */) {
      setOnRead((more) => socket.write(Buffer.from(more)));
      socket.write(head);
      return;
    }
    if (head[0] !== 0x54 /* T */) {
      socket.destroy();
      return;
    }
    if (head.length < HEADER_BYTES) return;
    const direction = String.fromCharCode(head[1] ?? 0);
    const length = head.readUIntBE(2, 6);
    const already = head.length - HEADER_BYTES;
    if (direction === 'U') receive(socket, length, already, setOnRead);
    else if (direction === 'D') {
      setOnRead(() => {
        setOnRead(() => {});
        sendBytes(socket, length, () => socket.end());
      });
    } else socket.destroy();
    socket.write('R');
  });
}

function receive(
  socket: Socket,
  length: number,
  already: number,
  setOnRead: (handler: OnRead) => void,
): void {
  let received = already;
  const check = () => {
    if (received < length) return;
    setOnRead(() => {});
    socket.end('K');
  };
  setOnRead((chunk) => {
    received += chunk.length;
    check();
  });
  check();
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

function open(
  port: number,
  timeoutMs: number,
  what: string,
  onRead: OnRead,
): { socket: Socket; failed: Promise<never> } {
  const socket = connect({
    port,
    host: '127.0.0.1',
    noDelay: true,
    allowHalfOpen: true,
    onread: { buffer: READ_BUFFER, callback: (n, buf) => delivered(onRead, n, buf) },
  });
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
  let echoed: (ms: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    echoed = resolve;
  });
  const { socket, failed } = open(port, timeoutMs, 'connect and echo', () =>
    echoed(performance.now() - started),
  );
  try {
    socket.once('connect', () => socket.write('E'));
    return await Promise.race([done, failed]);
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
  let onRead: OnRead = () => {};
  const { socket, failed } = open(port, timeoutMs, `transfer ${direction} of ${bytes} bytes`, (chunk) =>
    onRead(chunk),
  );
  try {
    const header = Buffer.alloc(HEADER_BYTES);
    header.write('T', 0);
    header.write(direction, 1);
    header.writeUIntBE(bytes, 2, 6);
    socket.write(header);
    const done = new Promise<number>((resolve) => {
      onRead = (ready) => {
        const started = performance.now();
        if (direction === 'U') {
          onRead = () => resolve(performance.now() - started);
          sendBytes(socket, bytes, () => {});
          return;
        }
        let received = ready.length - 1;
        onRead = (chunk) => {
          received += chunk.length;
          if (received >= bytes) resolve(performance.now() - started);
        };
        socket.write('G');
      };
    });
    return await Promise.race([done, failed]);
  } finally {
    socket.destroy();
  }
}

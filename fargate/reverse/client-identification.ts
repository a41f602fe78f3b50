/**
 * The identification exchange (RFC 4253 §4.2) done by the endpoint before ssh2 sees the socket,
 * so that the algorithms offered can depend on the client (shared/ssh-algorithms.ts): ssh2 fixes
 * its offer per `Server`, and sends it as soon as it has parsed the client's line.
 *
 * Our line goes out at accept, as ssh2 would send it (some clients, such as older libssh, wait for
 * it before sending theirs); the client's first line is read, then put back on the socket
 * (`unshift`) for ssh2 to parse as if it had read it itself, and ssh2's own copy of our line is
 * not sent again. Both lines enter the key exchange hash, so ours must be byte for byte the one
 * ssh2 believes it sent.
 */
import type { Socket } from 'node:net';

/** RFC 4253 §4.2: the line is at most 255 characters, CR LF included. */
const MAX_IDENTIFICATION = 255;
/** What logs show of a client's line: enough to tell the software and its version. */
const MAX_LOGGED = 80;

/** `SSH-2.0-<software>` followed by CR LF, as ssh2 writes it for `ident: software`. */
export function serverIdentificationLine(software: string): Buffer {
  return Buffer.from(`SSH-2.0-${software}\r\n`, 'latin1');
}

/**
 * Reads the client's first line and calls `done` with it (without CR LF), or with undefined when
 * more than 255 bytes came without a line end (ssh2 then judges them). Before `done`, every byte
 * read is back on the paused socket. Not called when the socket closes first. Bounded in memory
 * by the line limit; in time by the caller's banner deadline, which destroys the socket.
 */
export function readClientIdentification(
  socket: Socket,
  done: (identification: string | undefined) => void,
): void {
  let buffered: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const lineEnd = buffered.indexOf(0x0a);
    if (lineEnd === -1 && buffered.length < MAX_IDENTIFICATION) return;
    stop();
    socket.pause();
    socket.unshift(buffered);
    const isLine = lineEnd !== -1 && lineEnd < MAX_IDENTIFICATION;
    done(isLine ? buffered.toString('latin1', 0, lineEnd).replace(/\r$/, '') : undefined);
  };
  const stop = () => {
    socket.off('data', onData);
    socket.off('close', stop);
  };
  socket.on('data', onData);
  socket.once('close', stop);
}

/**
 * Drops ssh2's copy of our identification line, its first write on a socket it was given (ssh2's
 * Protocol.start()); any other first write passes (and the handshake then fails loudly, which
 * test/fargate/reverse-algorithms.test.ts would show).
 */
export function skipRepeatedIdentification(socket: Socket, line: Buffer): void {
  const write = socket.write;
  Object.defineProperty(socket, 'write', {
    configurable: true,
    writable: true,
    value: (chunk: unknown, ...rest: unknown[]): boolean => {
      socket.write = write;
      if (Buffer.isBuffer(chunk) && chunk.equals(line)) return true;
      return Reflect.apply(write, socket, [chunk, ...rest]);
    },
  });
}

/** A client's line as logs may show it: printable ASCII, cut short. */
export function identificationForLog(identification: string | undefined): string | undefined {
  if (identification === undefined) return undefined;
  return identification.slice(0, MAX_LOGGED).replace(/[^\x20-\x7e]/g, '?');
}

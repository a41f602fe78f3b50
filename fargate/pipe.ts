/**
 * Joins a platform-side TCP socket and an SSH channel: bytes flow both ways with backpressure
 * (stream.pipe pauses the faster side), half-closes travel as EOF, and an error or close on
 * either side tears down the other, so nothing is left half-open or buffered without bound.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** What an ssh2 channel offers beyond Duplex: EOF without closing (RFC 4254 §5.3). */
export interface SshChannel extends Duplex {
  eof?(): void;
  close?(): void;
}

export interface JoinOptions {
  /**
   * No byte either way for this long: both ends have gone quiet (a client that left without a FIN,
   * a stuck service), so the connection is closed rather than held forever.
   */
  idleTimeoutMs: number;
  onIdle?: () => void;
}

/** How long a quiet platform connection waits before TCP keepalive probes whether its client is there. */
const KEEPALIVE_DELAY_MS = 60_000;

export function joinSocketAndChannel(socket: Socket, channel: SshChannel, options: JoinOptions): void {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
  // Reads and writes both count as activity: bytes from the channel are writes on this socket.
  socket.setTimeout(options.idleTimeoutMs, () => {
    options.onIdle?.();
    socket.destroy();
  });
  // end:false: a server-side channel's end() also closes it; eof() keeps our reading side open.
  socket.pipe(channel, { end: false });
  socket.once('end', () => {
    // ssh2's eof() goes out at once, ahead of data still queued for want of window, and the
    // channel then drops that data (its _write returns early once not 'open'). An empty write's
    // callback runs only after every earlier write went out: send EOF from there.
    channel.write(Buffer.alloc(0), () => {
      if (channel.eof) channel.eof();
      else channel.end();
    });
  });
  channel.pipe(socket); // channel EOF → socket.end(): a half-close towards the platform client

  const teardown = () => {
    if (!socket.destroyed) socket.destroy();
    if (!channel.destroyed) channel.destroy();
  };
  socket.once('error', teardown);
  channel.once('error', teardown);
  // The socket closes once both directions ended (or on reset); the channel must follow.
  socket.once('close', () => {
    try {
      if (channel.close) channel.close();
      else channel.destroy();
    } catch {
      // The SSH connection under the channel is already gone: with compression, ssh2 frees its
      // zlib stream when the peer's FIN arrives and a close then throws (mscdex/ssh2#1178).
    }
  });
  // A channel closed by the customer side (or its SSH connection dropping) ends the socket; data
  // already piped still flushes unless the socket was reset.
  channel.once('close', () => {
    if (!socket.writableEnded) socket.destroy();
  });
}

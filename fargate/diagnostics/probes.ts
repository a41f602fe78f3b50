/**
 * Protocol-aware checks of a service through an open tunnel channel: a database that answers its
 * own protocol is reachable for real, where a bare open/close would also pass for a wrong port.
 */
import type { Duplex } from 'node:stream';

export interface ProbeResult {
  ok: boolean;
  message: string;
}

/** PostgreSQL's SSLRequest: length 8, code 80877103 (protocol docs, "SSL Session Encryption"). */
const POSTGRES_SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** Runs the probe that fits the service's port; other ports pass on an accepted connection. */
export async function probeService(channel: Duplex, port: number, timeoutMs: number): Promise<ProbeResult> {
  try {
    if (port === 5432) return await probePostgres(channel, timeoutMs);
    if (port === 3306) return await probeMysql(channel, timeoutMs);
    return { ok: true, message: `connection accepted (no protocol check for port ${port})` };
  } finally {
    channel.destroy();
  }
}

async function probePostgres(channel: Duplex, timeoutMs: number): Promise<ProbeResult> {
  channel.write(POSTGRES_SSL_REQUEST);
  const answer = await readAtLeast(channel, 1, timeoutMs);
  if (answer === undefined) return { ok: false, message: `no PostgreSQL answer within ${timeoutMs} ms` };
  const byte = String.fromCharCode(answer[0] ?? 0);
  if (byte === 'S') return { ok: true, message: 'PostgreSQL answered (SSL available)' };
  if (byte === 'N') return { ok: true, message: 'PostgreSQL answered (SSL not enabled)' };
  return {
    ok: false,
    message: `the service on port 5432 did not answer like PostgreSQL (first byte 0x${hex(answer)})`,
  };
}

async function probeMysql(channel: Duplex, timeoutMs: number): Promise<ProbeResult> {
  // The server speaks first: a packet header (3-byte length, sequence) then the handshake.
  const packet = await readAtLeast(channel, 5, timeoutMs);
  if (packet === undefined) return { ok: false, message: `no MySQL greeting within ${timeoutMs} ms` };
  const kind = packet[4];
  if (kind === 10) {
    const end = packet.indexOf(0, 5);
    const version = packet.subarray(5, end > 5 ? end : Math.min(packet.length, 40)).toString('latin1');
    return { ok: true, message: `MySQL greeting from server ${version}` };
  }
  if (kind === 0xff) {
    const text = packet
      .subarray(7)
      .toString('utf8')
      .replace(/^#\w{5}/, '')
      .slice(0, 200);
    return { ok: false, message: `MySQL refused the connection: ${text}` };
  }
  return { ok: false, message: `the service on port 3306 did not greet like MySQL (0x${hex(packet)})` };
}

/** Reads until `n` bytes arrived (resolves with what came), or undefined on timeout or early end. */
function readAtLeast(channel: Duplex, n: number, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (value: Buffer | undefined) => {
      clearTimeout(timer);
      channel.off('data', onData);
      channel.off('end', onEnd);
      channel.off('error', onEnd);
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= n) done(Buffer.concat(chunks));
    };
    const onEnd = () => done(size > 0 ? Buffer.concat(chunks) : undefined);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    channel.on('data', onData);
    channel.once('end', onEnd);
    channel.once('error', onEnd);
  });
}

const hex = (buffer: Buffer) => buffer.subarray(0, 8).toString('hex');

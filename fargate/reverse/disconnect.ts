/**
 * Ending a connection with a reason the customer reads: SSH_MSG_DISCONNECT (RFC 4253 §11.1) with a
 * reason code and a description, which OpenSSH prints as "Received disconnect from HOST port
 * P:CODE: DESCRIPTION". ssh2's own `Protocol.disconnect(reason)` always sends an empty
 * description, so a refused login would look like any dropped connection (or, refused through
 * the authentication reply, like a key problem). The packet is built through ssh2's packet
 * writer and sent the way its own disconnect() sends it: outside any key exchange in progress.
 */
import type { Socket } from 'node:net';
import type { Connection } from 'ssh2';
import protocolUtils from 'ssh2/lib/protocol/utils.js';

/** RFC 4253 §11.1 reason codes we send. */
export const DisconnectReason = {
  SERVICE_NOT_AVAILABLE: 7,
  BY_APPLICATION: 11,
  TOO_MANY_CONNECTIONS: 12,
} as const;
export type DisconnectReason = (typeof DisconnectReason)[keyof typeof DisconnectReason];

const SSH_MSG_DISCONNECT = 1;
/** OpenSSH prints the description on one line; keep it to a readable length. */
const MAX_DESCRIPTION = 400;

interface PacketWriter {
  allocStartKEX: number;
  alloc(payloadLength: number, force?: boolean): Buffer;
  finalize(packet: Buffer, force?: boolean): Buffer;
}

function packetWriterOf(conn: Connection): { protocol: object; writer: PacketWriter } | undefined {
  const protocol = (conn as unknown as { _protocol?: { _packetRW?: { write?: Partial<PacketWriter> } } })
    ._protocol;
  const writer = protocol?._packetRW?.write;
  if (
    !protocol ||
    !writer ||
    typeof writer.allocStartKEX !== 'number' ||
    typeof writer.alloc !== 'function' ||
    typeof writer.finalize !== 'function'
  ) {
    return undefined;
  }
  return { protocol, writer: writer as PacketWriter };
}

/**
 * Queues SSH_MSG_DISCONNECT with `reason` and `description` on the connection; false (nothing sent)
 * when ssh2's internals are not where they were.
 */
export function sendDisconnect(conn: Connection, reason: DisconnectReason, description: string): boolean {
  const found = packetWriterOf(conn);
  const send = protocolUtils?.sendPacket;
  if (!found || typeof send !== 'function') return false;
  const { protocol, writer } = found;
  const text = Buffer.from(description.slice(0, MAX_DESCRIPTION), 'utf8');
  // byte SSH_MSG_DISCONNECT, uint32 reason code, string description, string language tag ("")
  const payloadLength = 1 + 4 + 4 + text.length + 4;
  const start = writer.allocStartKEX;
  const packet = writer.alloc(payloadLength, true);
  packet[start] = SSH_MSG_DISCONNECT;
  packet.writeUInt32BE(reason, start + 1);
  packet.writeUInt32BE(text.length, start + 5);
  text.copy(packet, start + 9);
  packet.writeUInt32BE(0, start + 9 + text.length);
  send(protocol, writer.finalize(packet, true), true);
  return true;
}

/**
 * Sends the reason, then closes our side of the socket. Should ssh2's internals move, it falls
 * back to the plain `conn.end()` (a disconnect without description);
 * test/fargate/reverse-sessions.test.ts reads OpenSSH's message and would say so.
 */
export function disconnectWithReason(
  conn: Connection,
  socket: Socket | undefined,
  reason: DisconnectReason,
  description: string,
): void {
  let sent = false;
  try {
    sent = socket !== undefined && sendDisconnect(conn, reason, description);
  } catch {
    sent = false;
  }
  if (sent) socket?.end();
  else conn.end();
}

/**
 * The `server-sig-algs` extension (RFC 8308 §3.1): the signature algorithms the endpoint accepts
 * for a login, which clients read to choose how to sign. ssh2 1.17 sends it with a comma missing
 * (`ecdsa-sha2-nistp521rsa-sha2-512`, ssh2 PR #1485), so clients that trust the list never sign
 * with those two: Dropbear drops a P-521 key altogether ("No auth methods could be used"), OpenSSH
 * and PuTTY sign RSA with rsa-sha2-256 only. Here ssh2's EXT_INFO is switched off for the
 * connection and ours, with the list right, goes out in its place: the first packet after the
 * first NEWKEYS, as RFC 8308 §2.4 asks, through ssh2's own packet writer (as disconnect.ts does).
 * Should ssh2's internals move, nothing changes (ssh2's list goes out) and
 * test/fargate/reverse-interop.test.ts, whose Dropbear P-521 login needs ours, fails.
 */
import type { Connection } from 'ssh2';
import protocolUtils from 'ssh2/lib/protocol/utils.js';

/** RFC 8308 §2.3. */
const SSH_MSG_EXT_INFO = 7;
const SERVER_SIG_ALGS = Buffer.from('server-sig-algs', 'latin1');

interface ProtocolInternals {
  _onHandshakeComplete: (...args: unknown[]) => unknown;
  _kex?: { remoteExtInfoEnabled?: boolean };
  _packetRW: {
    write: {
      allocStart: number;
      alloc(payloadLength: number): Buffer;
      finalize(packet: Buffer): Buffer;
    };
  };
}

function internalsOf(conn: Connection): ProtocolInternals | undefined {
  const protocol = (conn as unknown as { _protocol?: Partial<ProtocolInternals> })._protocol;
  const writer = protocol?._packetRW?.write;
  if (
    !protocol ||
    typeof protocol._onHandshakeComplete !== 'function' ||
    !writer ||
    typeof writer.allocStart !== 'number' ||
    typeof writer.alloc !== 'function' ||
    typeof writer.finalize !== 'function' ||
    typeof protocolUtils?.sendPacket !== 'function'
  ) {
    return undefined;
  }
  return protocol as ProtocolInternals;
}

/**
 * Arranges for `algorithms` to be announced on `conn` (a connection whose key exchange has not
 * completed yet) instead of ssh2's list. False when ssh2's internals are not where they were.
 */
export function announceSignatureAlgorithms(conn: Connection, algorithms: readonly string[]): boolean {
  const protocol = internalsOf(conn);
  const send = protocolUtils?.sendPacket;
  if (!protocol || !send) return false;
  const list = Buffer.from(algorithms.join(','), 'latin1');
  const ssh2Complete = protocol._onHandshakeComplete;
  protocol._onHandshakeComplete = (...args: unknown[]) => {
    // Only the first key exchange: rekeys send no EXT_INFO.
    protocol._onHandshakeComplete = ssh2Complete;
    const kex = protocol._kex;
    if (kex?.remoteExtInfoEnabled === true) {
      kex.remoteExtInfoEnabled = false;
      // byte SSH_MSG_EXT_INFO, uint32 nr-extensions, string name, string value
      const writer = protocol._packetRW.write;
      const start = writer.allocStart;
      const packet = writer.alloc(1 + 4 + 4 + SERVER_SIG_ALGS.length + 4 + list.length);
      packet[start] = SSH_MSG_EXT_INFO;
      packet.writeUInt32BE(1, start + 1);
      packet.writeUInt32BE(SERVER_SIG_ALGS.length, start + 5);
      SERVER_SIG_ALGS.copy(packet, start + 9);
      packet.writeUInt32BE(list.length, start + 9 + SERVER_SIG_ALGS.length);
      list.copy(packet, start + 13 + SERVER_SIG_ALGS.length);
      send(protocol, writer.finalize(packet));
    }
    return ssh2Complete(...args);
  };
  return true;
}

/**
 * sendDisconnect / disconnectWithReason against stand-ins for ssh2's connection: the packet that
 * reaches the cipher (RFC 4253 §11.1 layout) and the fallback when ssh2's internals moved. What
 * OpenSSH prints from it is in reverse-sessions.test.ts and reverse-storage-outage.test.ts.
 */
import type { Socket } from 'node:net';
import type { Connection } from 'ssh2';
import { describe, expect, it } from 'vitest';
import { DisconnectReason, disconnectWithReason, sendDisconnect } from '../../../fargate/reverse/disconnect';

/** ssh2's Protocol as far as disconnect.ts and ssh2's sendPacket touch it (after key exchange). */
class FakeProtocol {
  readonly encrypted: Buffer[] = [];
  readonly _cipher = { encrypt: (packet: Buffer) => this.encrypted.push(packet) };
  readonly _packetRW = {
    write: {
      allocStartKEX: 5,
      // uint32 packet length, byte padding length, payload, padding (as ssh2's NullCipher lays it out)
      alloc: (payloadLength: number, force?: boolean) => {
        if (force !== true) throw new Error('a disconnect must not wait for a key exchange');
        return Buffer.alloc(5 + payloadLength + 4);
      },
      finalize: (packet: Buffer) => packet,
    },
  };
}

const connectionWith = (protocol: unknown, onEnd: () => void = () => {}) =>
  ({ _protocol: protocol, end: onEnd }) as unknown as Connection;

/** Reads the payload back: message number, reason code, description, language tag. */
function parse(packet: Buffer): { message: number; code: number; description: string; language: string } {
  const message = packet[5] ?? -1;
  const code = packet.readUInt32BE(6);
  const length = packet.readUInt32BE(10);
  const description = packet.subarray(14, 14 + length).toString('utf8');
  const languageLength = packet.readUInt32BE(14 + length);
  return {
    message,
    code,
    description,
    language: packet.subarray(18 + length, 18 + length + languageLength).toString(),
  };
}

describe('sendDisconnect', () => {
  it('queues SSH_MSG_DISCONNECT with the reason code and the description', () => {
    const protocol = new FakeProtocol();
    expect(
      sendDisconnect(connectionWith(protocol), DisconnectReason.TOO_MANY_CONNECTIONS, 'too many: 4 ✓'),
    ).toBe(true);
    expect(protocol.encrypted).toHaveLength(1);
    expect(parse(protocol.encrypted[0] ?? Buffer.alloc(0))).toEqual({
      message: 1,
      code: 12,
      description: 'too many: 4 ✓',
      language: '',
    });
  });

  it('cuts an overlong description', () => {
    const protocol = new FakeProtocol();
    sendDisconnect(connectionWith(protocol), DisconnectReason.SERVICE_NOT_AVAILABLE, 'x'.repeat(5_000));
    expect(parse(protocol.encrypted[0] ?? Buffer.alloc(0)).description).toBe('x'.repeat(400));
  });

  it.each([
    ['no protocol', undefined],
    ['no packet writer', {}],
    [
      'a writer without alloc',
      { _packetRW: { write: { allocStartKEX: 5, finalize: () => Buffer.alloc(0) } } },
    ],
  ])('sends nothing when ssh2 has %s', (_, protocol) => {
    expect(sendDisconnect(connectionWith(protocol), DisconnectReason.BY_APPLICATION, 'x')).toBe(false);
  });
});

describe('disconnectWithReason', () => {
  const socketStandIn = () => {
    const calls = { end: 0 };
    return { socket: { end: () => calls.end++ } as unknown as Socket, calls };
  };

  it('sends the reason, then ends the socket itself (no second, empty disconnect from conn.end())', () => {
    const protocol = new FakeProtocol();
    let connEnded = 0;
    const { socket, calls } = socketStandIn();
    disconnectWithReason(
      connectionWith(protocol, () => connEnded++),
      socket,
      DisconnectReason.BY_APPLICATION,
      'bye',
    );
    expect(protocol.encrypted.map((p) => parse(p).description)).toEqual(['bye']);
    expect(calls.end).toBe(1);
    expect(connEnded).toBe(0);
  });

  it("falls back to conn.end() when ssh2's internals are not where they were", () => {
    let connEnded = 0;
    const { socket, calls } = socketStandIn();
    disconnectWithReason(
      connectionWith({}, () => connEnded++),
      socket,
      DisconnectReason.BY_APPLICATION,
      'x',
    );
    expect(connEnded).toBe(1);
    expect(calls.end).toBe(0);
  });

  it('falls back to conn.end() when building the packet throws', () => {
    const protocol = new FakeProtocol();
    protocol._packetRW.write.alloc = () => {
      throw new Error('moved');
    };
    let connEnded = 0;
    disconnectWithReason(
      connectionWith(protocol, () => connEnded++),
      socketStandIn().socket,
      7,
      'x',
    );
    expect(connEnded).toBe(1);
  });
});

/**
 * The unencrypted start of an SSH connection, by hand (RFC 4253 §4.2 and §6): what a real client
 * will not do on request, such as sending a key exchange message with a malformed public key.
 * Only the plaintext phase before the first NEWKEYS: no cipher, no MAC.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { withTimeout } from './wait-for';

export const SSH_MSG = { DISCONNECT: 1, KEXINIT: 20, KEX_ECDH_INIT: 30, KEX_ECDH_REPLY: 31 } as const;

/** RFC 4253 §6.1: implementations need only take 35000-byte packets; more is a broken peer here. */
const MAX_PACKET = 35_000;

export interface RawSsh {
  /** The server's identification string, without CR LF. */
  readonly serverIdent: string;
  send(payload: Buffer): void;
  /** The next packet's payload; rejects when the connection closes or `timeoutMs` passes first. */
  readPacket(timeoutMs: number): Promise<Buffer>;
  /** Resolves once the server has closed the connection. */
  readonly closed: Promise<void>;
  destroy(): void;
}

/** Connects, sends our identification string and reads the server's. */
export async function rawSsh(port: number, ident = 'SSH-2.0-TunnelkeeperRawTest_1.0'): Promise<RawSsh> {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  let buffered = Buffer.alloc(0);
  let ended = false;
  let wake: (() => void) | undefined;
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    wake?.();
  });
  socket.on('close', () => {
    ended = true;
    wake?.();
  });
  socket.on('error', () => {}); // a reset shows as the close
  const more = () =>
    new Promise<void>((resolve, reject) => {
      if (ended) reject(new Error('connection closed'));
      wake = () => {
        wake = undefined;
        resolve();
      };
    });

  socket.write(`${ident}\r\n`);
  const serverIdent = await withTimeout(
    (async () => {
      for (;;) {
        const eol = buffered.indexOf('\r\n');
        if (eol >= 0) {
          const line = buffered.subarray(0, eol).toString('latin1');
          buffered = buffered.subarray(eol + 2);
          if (line.startsWith('SSH-')) return line; // earlier lines are a banner (§4.2)
        } else if (buffered.length > 8192) {
          throw new Error('no identification string in the first 8 KiB');
        } else {
          await more();
        }
      }
    })(),
    10_000,
    'server identification string',
  );

  return {
    serverIdent,
    send(payload) {
      // uint32 packet_length, byte padding_length, payload, padding: a multiple of 8, ≥ 4 of padding.
      let padding = 8 - ((5 + payload.length) % 8);
      if (padding < 4) padding += 8;
      const packet = Buffer.alloc(5 + payload.length + padding);
      packet.writeUInt32BE(1 + payload.length + padding, 0);
      packet[4] = padding;
      payload.copy(packet, 5);
      randomBytes(padding).copy(packet, 5 + payload.length);
      socket.write(packet);
    },
    readPacket(timeoutMs) {
      return withTimeout(
        (async () => {
          for (;;) {
            if (buffered.length >= 4) {
              const length = buffered.readUInt32BE(0);
              if (length > MAX_PACKET) throw new Error(`packet of ${length} bytes`);
              if (buffered.length >= 4 + length) {
                const padding = buffered[4] ?? 0;
                const payload = buffered.subarray(5, 4 + length - padding);
                buffered = buffered.subarray(4 + length);
                return Buffer.from(payload);
              }
            }
            await more();
          }
        })(),
        timeoutMs,
        'SSH packet',
      );
    },
    closed,
    destroy: () => socket.destroy(),
  };
}

/** A `string` (uint32 length, bytes). */
export function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([length, bytes]);
}

/** SSH_MSG_KEXINIT offering exactly these algorithms (RFC 4253 §7.1). */
export function kexinitPayload(algorithms: {
  kex: string[];
  hostKey: string[];
  cipher: string[];
  mac: string[];
}): Buffer {
  const list = (names: string[]) => sshString(names.join(','));
  return Buffer.concat([
    Buffer.from([SSH_MSG.KEXINIT]),
    randomBytes(16),
    list(algorithms.kex),
    list(algorithms.hostKey),
    list(algorithms.cipher),
    list(algorithms.cipher),
    list(algorithms.mac),
    list(algorithms.mac),
    list(['none']),
    list(['none']),
    list([]),
    list([]),
    Buffer.from([0, 0, 0, 0, 0]), // first_kex_packet_follows, reserved
  ]);
}

/** The ten name-lists of a SSH_MSG_KEXINIT payload, in order (kex first). */
export function kexinitLists(payload: Buffer): string[][] {
  if (payload[0] !== SSH_MSG.KEXINIT) throw new Error(`message ${payload[0]}, not KEXINIT`);
  const lists: string[][] = [];
  let at = 17;
  for (let i = 0; i < 10; i++) {
    const length = payload.readUInt32BE(at);
    const text = payload.subarray(at + 4, at + 4 + length).toString('latin1');
    lists.push(text === '' ? [] : text.split(','));
    at += 4 + length;
  }
  return lists;
}

/** Reason code and description of a SSH_MSG_DISCONNECT payload (RFC 4253 §11.1). */
export function parseDisconnect(payload: Buffer): { reason: number; description: string } {
  if (payload[0] !== SSH_MSG.DISCONNECT) throw new Error(`message ${payload[0]}, not DISCONNECT`);
  const reason = payload.readUInt32BE(1);
  const length = payload.readUInt32BE(5);
  return { reason, description: payload.subarray(9, 9 + length).toString('utf8') };
}

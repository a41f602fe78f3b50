/**
 * Relays a platform connection to the gateway that carries its tunnel, over the internal control
 * network: an HTTP upgrade on the peer's control endpoint (bearer token, the same as every control
 * call), after which the socket carries the connection's bytes as they are. The peer opens the
 * channel through its own customer sessions only, so a relay never relays again.
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import type { PeerRef } from './peer-directory';

export const RELAY_UPGRADE = 'tunnelkeeper-relay';
/** Carries the platform client's address to the peer, for the `forwarded-tcpip` origin. */
export const RELAY_ORIGIN_HEADER = 'x-tunnelkeeper-origin';

export interface PeerRelayOptions {
  token: string;
  /** A peer that has not switched protocols by then is given up on (the next one is tried). */
  timeoutMs: number;
}

export class PeerRelay {
  constructor(private readonly options: PeerRelayOptions) {}

  /** A socket joined to a channel the peer opened through its sessions of `tunnelId`. */
  open(peer: PeerRef, tunnelId: string, origin: { ip: string; port: number }): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const req = request(`${peer.controlUrl}/tunnels/${tunnelId}/relay`, {
        method: 'POST',
        agent: false,
        headers: {
          Authorization: `Bearer ${this.options.token}`,
          Connection: 'Upgrade',
          Upgrade: RELAY_UPGRADE,
          [RELAY_ORIGIN_HEADER]: `${origin.ip} ${origin.port}`,
        },
        timeout: this.options.timeoutMs,
      });
      req.once('upgrade', (_res, socket: Socket, head: Buffer) => {
        socket.setTimeout(0);
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
      });
      req.once('response', (res) => {
        res.resume();
        reject(new Error(`peer ${peer.workerId} could not carry the connection (HTTP ${res.statusCode})`));
      });
      req.once('timeout', () => req.destroy(new Error(`peer ${peer.workerId} did not answer in time`)));
      req.once('error', (err) => reject(new Error(`peer ${peer.workerId} unreachable: ${err.message}`)));
      req.end();
    });
  }
}

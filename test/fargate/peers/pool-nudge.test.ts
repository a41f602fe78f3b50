/**
 * A stopping gateway asks its peers to take the standard tunnels it offers (`POST /pool/poll` on
 * their control endpoints, behind the control token): each peer that will look now answers 202;
 * one that refuses, is gone or hangs costs at most the timeout, and is not counted.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlServer } from '../../../fargate/control-server';
import { nudgePeers } from '../../../fargate/peers/pool-nudge';
import { freePort } from '../../../local/free-port';
import { createLogger } from '../../../shared/logger';

describe('nudging peers to take offered standard tunnels', () => {
  const token = 'control-token-for-this-test';
  let polls = 0;
  let control: ControlServer;
  let controlUrl: string;
  let hanging: Server;
  let hangingUrl: string;

  beforeAll(async () => {
    control = new ControlServer({
      host: '127.0.0.1',
      port: 0,
      token,
      logger: createLogger('error', () => {}),
      testTunnel: async () => undefined,
      reconnectTunnel: () => undefined,
      pollPool: () => {
        polls++;
      },
    });
    controlUrl = await control.listen();
    hanging = createServer(() => {}); // takes the request, never answers
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const address = hanging.address();
    hangingUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });

  afterAll(async () => {
    await control.close();
    hanging.closeAllConnections();
    await new Promise((resolve) => hanging.close(resolve));
  });

  it('counts the peer that takes it, and makes it poll once', async () => {
    const before = polls;
    expect(await nudgePeers([{ workerId: 'wk_peer', controlUrl }], token, 1_000)).toBe(1);
    expect(polls).toBe(before + 1);
  });

  it('is refused without the control token, and the peer does not poll', async () => {
    const before = polls;
    expect(await nudgePeers([{ workerId: 'wk_peer', controlUrl }], 'wrong-token', 1_000)).toBe(0);
    const res = await fetch(`${controlUrl}/pool/poll`, { method: 'POST' });
    expect(res.status).toBe(401);
    expect(polls).toBe(before);
  });

  it('gives up on a peer that is gone or hangs within the timeout, and still counts the others', async () => {
    const gone = `http://127.0.0.1:${await freePort()}`;
    const started = Date.now();
    const taken = await nudgePeers(
      [
        { workerId: 'wk_gone', controlUrl: gone },
        { workerId: 'wk_hanging', controlUrl: hangingUrl },
        { workerId: 'wk_peer', controlUrl },
      ],
      token,
      300,
    );
    expect(taken).toBe(1);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

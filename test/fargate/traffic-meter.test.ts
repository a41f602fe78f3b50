/** Per-tunnel and total bytes from real sockets' own counts, read when asked and when they close. */
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TrafficMeter } from '../../fargate/traffic-meter';
import type { TunnelType } from '../../shared/tunnel';
import { waitFor } from '../helpers/wait-for';

describe('TrafficMeter', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  /** A connected socket pair on loopback: `platform` is the side the listener accepted. */
  async function pair(): Promise<{ platform: Socket; client: Socket }> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('no address');
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect(address.port, '127.0.0.1');
    const [platform] = await accepted;
    closers.push(() => {
      client.destroy();
      platform.destroy();
      server.close();
    });
    return { platform, client };
  }

  it('counts connections and bytes each way per tunnel, open ones included, closed ones kept', async () => {
    const opened: [TunnelType, number][] = [];
    const meter = new TrafficMeter(() => new Date(1_000), {
      connectionOpened: (type, seconds) => opened.push([type, seconds]),
      connectionFailed: () => {},
    });
    meter.serve('tun_a', 'reverse');
    meter.serve('tun_idle', 'standard');
    const { platform, client } = await pair();
    meter.opened('tun_a', platform, 0.004);
    client.write(Buffer.alloc(3000));
    platform.write(Buffer.alloc(500));
    await waitFor(() => platform.bytesRead >= 3000 || undefined, 2_000);
    expect(meter.perTunnel(10)).toEqual({ tun_a: [1_000, 1, 1, 3000, 500] });
    expect(meter.openConnections()).toEqual({ reverse: 1, standard: 0 });
    expect(opened).toEqual([['reverse', 0.004]]);

    client.write(Buffer.alloc(1000));
    await waitFor(() => platform.bytesRead >= 4000 || undefined, 2_000);
    platform.destroy();
    await once(platform, 'close');
    expect(meter.perTunnel(10)).toEqual({ tun_a: [1_000, 1, 0, 4000, 500] });
    expect(meter.byteTotals().reverse).toEqual({ toService: 4000, fromService: 500 });
    // A tunnel no longer served here drops from the heartbeat; the totals keep what it moved.
    meter.stop('tun_a');
    expect(meter.perTunnel(10)).toEqual({});
    expect(meter.byteTotals().reverse).toEqual({ toService: 4000, fromService: 500 });
  });

  it('carries only the busiest tunnels when there are more than the limit', async () => {
    const meter = new TrafficMeter(() => new Date(0));
    for (const [id, bytes] of [
      ['tun_small', 10],
      ['tun_big', 5000],
      ['tun_mid', 700],
    ] as const) {
      meter.serve(id, 'standard');
      const { platform, client } = await pair();
      meter.opened(id, platform, 0.001);
      client.write(Buffer.alloc(bytes));
      await waitFor(() => platform.bytesRead >= bytes || undefined, 2_000);
    }
    expect(Object.keys(meter.perTunnel(2))).toEqual(['tun_big', 'tun_mid']);
  });
});

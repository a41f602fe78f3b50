/** Which gateways a gateway relays to and nudges: live peers with a control endpoint, never itself. */
import { describe, expect, it } from 'vitest';
import { livePeerBeats, livePeers, peerHoldings } from '../../../fargate/peers/peer-directory';
import type { WorkerHeartbeat } from '../../../shared/gateway-items';

const now = new Date('2026-12-05T12:00:00.000Z');
const settings = { heartbeatIntervalMs: 1_000, keepaliveIntervalMs: 1_000 };
const beat = (workerId: string, over: Partial<WorkerHeartbeat> = {}): WorkerHeartbeat => ({
  workerId,
  lastBeatAt: new Date(now.getTime() - 500).toISOString(),
  startedAt: '2026-12-05T11:00:00.000Z',
  address: '127.0.0.1',
  version: 'test',
  controlUrl: `http://127.0.0.1:1${workerId.length}`,
  counts: { reverse: 0, standard: 0 },
  ...over,
});

describe('the peer directory', () => {
  const workers = [
    beat('wk_self', { holds: [['tun_a', 20_001]] }),
    beat('wk_live', { holds: [['tun_a', 20_001]] }),
    beat('wk_stopped', { stoppedAt: now.toISOString(), holds: [['tun_b', 20_002]] }),
    beat('wk_stale', { lastBeatAt: '2026-12-05T11:00:00.000Z', holds: [['tun_c', 20_003]] }),
    beat('wk_nocontrol', { controlUrl: undefined }),
  ];

  it('lists the live peers with a control endpoint, not itself, not stopped or stale ones', () => {
    expect(livePeers(workers, 'wk_self', { now }, settings).map((p) => p.workerId)).toEqual(['wk_live']);
  });

  it('relays a tunnel only to the live peers that carry it', () => {
    const carried = new Map<string, [string, number][]>(
      workers.map((w) => [w.workerId, w.holds ?? []] as [string, [string, number][]]),
    );
    const holdings = peerHoldings(livePeerBeats(workers, 'wk_self', { now }, settings), carried);
    expect([...holdings.keys()]).toEqual(['tun_a']);
    expect(holdings.get('tun_a')?.peers.map((p) => p.workerId)).toEqual(['wk_live']);
  });
});

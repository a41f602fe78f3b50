/**
 * Which tunnel ports the registry listens on (what the health endpoint tells the connect load
 * balancers): a relay listener opened for a tunnel another gateway carries counts until a
 * shutdown's drain stops it accepting. Real listeners on loopback.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { ForwardRegistry } from '../../../fargate/reverse/forward-registry';
import { StateWriter } from '../../../fargate/state-writer';
import { freePort } from '../../../local/free-port';
import { silentLogger } from '../../../shared/logger';
import { DynamoGatewayStore } from '../../../shared/store/dynamo-gateway-store';

// Relay listeners write no state: the store behind the writer is never called.
const unusedStore = new DynamoGatewayStore(
  DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'eu-west-1' })),
  'unused',
);
const registries: ForwardRegistry[] = [];

function registry(): ForwardRegistry {
  const made = new ForwardRegistry({
    workerId: 'wk_self',
    bindHost: '127.0.0.1',
    connectHost: '127.0.0.1',
    maxChannelsPerTunnel: 4,
    dataIdleTimeoutMs: 60_000,
    takeoverDrainMs: 100,
    logger: silentLogger,
    stateWriter: new StateWriter(unusedStore, silentLogger),
    now: () => new Date(),
  });
  registries.push(made);
  return made;
}

afterEach(async () => {
  await Promise.all(registries.splice(0).map((r) => r.closeListeners()));
});

describe('ForwardRegistry.listensOn', () => {
  it("counts a relay listener for a peer's tunnel, and no other port", async () => {
    const port = await freePort();
    const tunnels = registry();
    expect(tunnels.listensOn(port)).toBe(false);
    await tunnels.syncPeers(
      new Map([['tun_peer', { port, peers: [{ workerId: 'wk_peer', controlUrl: 'http://127.0.0.1:1' }] }]]),
    );
    expect(tunnels.listensOn(port)).toBe(true);
    expect(tunnels.listensOn(port === 65535 ? port - 1 : port + 1)).toBe(false);
    // The peer no longer carries it: the relay closes.
    await tunnels.syncPeers(new Map());
    expect(tunnels.listensOn(port)).toBe(false);
  });

  it('stops counting a port once a shutdown drains its listener', async () => {
    const port = await freePort();
    const tunnels = registry();
    await tunnels.syncPeers(
      new Map([['tun_peer', { port, peers: [{ workerId: 'wk_peer', controlUrl: 'http://127.0.0.1:1' }] }]]),
    );
    await tunnels.drain(Date.now());
    expect(tunnels.listensOn(port)).toBe(false);
  });
});

/**
 * How a gateway learns that a tunnel it carries changed (issue 18): updates, deletes and key
 * retirements log the tunnel in the same write, and each poll names the tunnels changed since the
 * last, so a gateway rereads those instead of every tunnel it carries. On DynamoDB Local.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TunnelChangeFollower } from '../../fargate/tunnel-change-follower';
import { DynamoGatewayStore } from '../../shared/store/dynamo-gateway-store';
import { DynamoTunnelStore } from '../../shared/store/dynamo-tunnel-store';
import { CHANGE_RETENTION_MS } from '../../shared/store/tunnel-changes';
import { createTestTable } from '../helpers/dynamo';
import { countingClient } from '../helpers/dynamo-count';
import { storeTunnels } from '../helpers/gateway-sim';

type Table = Awaited<ReturnType<typeof createTestTable>>;

describe('the log of tunnel changes', () => {
  let t: Table;
  beforeEach(async () => {
    t = await createTestTable();
  });
  afterEach(() => t.drop());

  it('names the tunnels updated, deleted or whose previous key was retired, and no other', async () => {
    const [updated, deleted, rotated, untouched] = await storeTunnels(t.doc, t.tableName, 'ws_1', 4);
    if (!updated || !deleted || !rotated || !untouched) throw new Error('no tunnels');
    const gateway = new DynamoGatewayStore(t.doc, t.tableName);
    const tunnels = new DynamoTunnelStore(t.doc, t.tableName);
    const counted = countingClient(t.doc);
    const follower = new TunnelChangeFollower((since, until) =>
      new DynamoGatewayStore(counted.doc, t.tableName).listTunnelChanges(since, until),
    );
    // The first poll cannot vouch for what came before it.
    expect(await follower.poll()).toEqual({ everything: true });

    const disabled = await tunnels.updateTunnel({ ...updated, enabled: false });
    await tunnels.deleteTunnel(deleted);
    const withPrevious = await tunnels.updateTunnel({ ...rotated, previousPublicKey: untouched.publicKey });
    const afterRotation = await follower.poll();
    expect(afterRotation.everything).toBe(false);
    if (afterRotation.everything) return;
    expect(afterRotation.tunnelIds.sort()).toEqual([updated.id, deleted.id, rotated.id].sort());
    // Each change names the version it wrote (a login cache keeps records at least that new); a delete, none.
    expect(afterRotation.changes).toEqual([
      { tunnelId: updated.id, version: disabled.version },
      { tunnelId: deleted.id },
      { tunnelId: rotated.id, version: withPrevious.version },
    ]);

    // A write in between does not stop the retirement, and the log names the version it wrote.
    await tunnels.updateTunnel({ ...withPrevious, name: 'renamed' });
    await gateway.retirePreviousKey(rotated.id, untouched.publicKey);
    const retired = await gateway.getTunnelById(rotated.id);
    expect(retired).toMatchObject({ name: 'renamed', version: withPrevious.version + 2 });
    expect(retired?.previousPublicKey).toBeUndefined();
    const afterRetire = await follower.poll();
    if (afterRetire.everything) throw new Error('the log was followed');
    expect(afterRetire.changes.filter((c) => c.tunnelId === rotated.id).at(-1)).toEqual({
      tunnelId: rotated.id,
      version: withPrevious.version + 2,
    });
    expect(afterRetire.tunnelIds).not.toContain(untouched.id);
    // A retirement that no longer applies changes nothing and logs nothing new.
    await gateway.retirePreviousKey(untouched.id, 'ssh-ed25519 AAAA');

    // One query per poll, whatever the number of tunnels; the log reads only what changed.
    counted.reset();
    await follower.poll();
    expect(counted.queries()).toBeLessThanOrEqual(2);
    expect(counted.queriedItems()).toBeLessThanOrEqual(5); // the five changes above
  });

  it("retires a key whose record another write changed between the retirement's read and its write", async () => {
    const [tunnel, other] = await storeTunnels(t.doc, t.tableName, 'ws_1', 2);
    if (!tunnel || !other) throw new Error('no tunnels');
    const tunnels = new DynamoTunnelStore(t.doc, t.tableName);
    const rotated = await tunnels.updateTunnel({ ...tunnel, previousPublicKey: other.publicKey });
    // The first read of the retirement is answered, then an API rename lands before its write.
    let renamed = false;
    const send = t.doc.send.bind(t.doc) as (command: unknown) => Promise<unknown>;
    const racing = new Proxy(t.doc, {
      get(target, prop, receiver) {
        if (prop !== 'send') return Reflect.get(target, prop, receiver);
        return async (command: { constructor: { name: string } }) => {
          const out = await send(command);
          if (command.constructor.name === 'GetCommand' && !renamed) {
            renamed = true;
            await tunnels.updateTunnel({ ...rotated, name: 'renamed meanwhile' });
          }
          return out;
        };
      },
    });
    await new DynamoGatewayStore(racing, t.tableName).retirePreviousKey(tunnel.id, other.publicKey);
    expect(renamed).toBe(true);
    const after = await new DynamoGatewayStore(t.doc, t.tableName).getTunnelById(tunnel.id);
    expect(after).toMatchObject({ name: 'renamed meanwhile', version: rotated.version + 2 });
    expect(after?.previousPublicKey).toBeUndefined();
  });

  it('reads behind the clock and overlaps, and vouches for nothing after an absence longer than the log keeps', async () => {
    let now = 1_000_000_000_000;
    const asked: [number, number][] = [];
    const follower = new TunnelChangeFollower(
      async (since, until) => {
        asked.push([since, until]);
        return [];
      },
      () => now,
    );
    expect(await follower.poll()).toEqual({ everything: true });
    now += 15_000;
    const next = await follower.poll();
    expect(next).toEqual({ everything: false, tunnelIds: [], changes: [], completeUntil: now - 30_000 });
    // From 30 s before the first poll: a change carrying its writer's clock lands a little late.
    expect(asked).toEqual([[now - 15_000 - 30_000, now + 1]]);
    now += CHANGE_RETENTION_MS;
    expect(await follower.poll()).toEqual({ everything: true });
  });
});

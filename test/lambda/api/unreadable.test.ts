/**
 * Nothing stored can break a read (issue 12, acceptance 2): an item made unreadable by hand (a
 * hand edit, a bug, a version skew) costs only itself. The listing serves every other tunnel and
 * names the bad one; its GET says what is wrong; DELETE still removes it; an unreadable STATE or
 * STATUS item shows as a warning on that tunnel's status.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusSchema, TunnelListSchema } from '../../../shared/schemas';
import { keys } from '../../../shared/store/table';
import { createTestApi } from '../../helpers/api';
import { gatewaySim } from '../../helpers/gateway-sim';

type Api = Awaited<ReturnType<typeof createTestApi>>;

const reverseBody = (name: string) => ({
  type: 'reverse',
  name,
  service: { host: 'db.internal', port: 5432 },
});

describe('a stored item that cannot be read', () => {
  let api: Api;
  let ws: { id: string; apiKey: string };
  beforeAll(async () => {
    api = await createTestApi();
    ws = await api.newWorkspace();
  });
  afterAll(() => api.close());

  const create = async (name: string, key = ws.apiKey): Promise<string> =>
    (await api.call('POST', '/v1/tunnels', key, reverseBody(name))).json.id;
  /** Sets one attribute of a stored item to a value its schema refuses, as a hand edit would. */
  const spoil = async (key: { pk: string; sk: string }, attribute: string, value: unknown) => {
    await api.table.doc.send(
      new UpdateCommand({
        TableName: api.table.tableName,
        Key: key,
        UpdateExpression: 'SET #a = :v',
        ExpressionAttributeNames: { '#a': attribute },
        ExpressionAttributeValues: { ':v': value },
      }),
    );
  };

  it('leaves the listing whole: every other tunnel, the bad one named; its GET says why; DELETE works', async () => {
    const good = [await create('a'), await create('b')];
    const bad = await create('bad');
    await spoil(keys.tunnel(bad), 'service', 'not an endpoint');

    const list = await api.call('GET', '/v1/tunnels', ws.apiKey);
    expect(list.status).toBe(200);
    const page = TunnelListSchema.strict().parse(list.json);
    expect(page.items.map((t) => t.id).sort()).toEqual([...good].sort());
    expect(page.unreadable).toEqual([
      { id: bad, message: expect.stringMatching(/^stored configuration cannot be read \(service: /) },
    ]);
    // The log names the item, for the operators.
    expect(api.logs.some((l) => l.includes('"msg":"stored item unreadable"') && l.includes(bad))).toBe(true);

    const get = await api.call('GET', `/v1/tunnels/${bad}`, ws.apiKey);
    expect(get.status).toBe(500);
    expect(get.json.error).toEqual({
      code: 'internal_error',
      message: expect.stringMatching(
        new RegExp(
          `tunnel ${bad} is stored in a form that cannot be read \\(service: .*DELETE still removes it`,
        ),
      ),
      details: { id: bad, item: 'META' },
    });
    // Filters and other routes of the workspace still work around it.
    expect((await api.call('GET', '/v1/tunnels?state=pending', ws.apiKey)).status).toBe(200);

    expect((await api.call('DELETE', `/v1/tunnels/${bad}`, ws.apiKey)).status).toBe(204);
    const after = TunnelListSchema.parse((await api.call('GET', '/v1/tunnels', ws.apiKey)).json);
    expect(after.unreadable).toBeUndefined();
    expect(after.items).toHaveLength(2);
    // Its port went back to the pool with it.
    expect((await api.call('GET', `/v1/tunnels/${bad}`, ws.apiKey)).status).toBe(404);
  });

  it("keeps another workspace's unreadable tunnel indistinguishable from a missing one", async () => {
    const bad = await create('theirs');
    await spoil(keys.tunnel(bad), 'service', 42);
    const other = await api.newWorkspace('other');
    expect((await api.call('GET', `/v1/tunnels/${bad}`, other.apiKey)).status).toBe(404);
    expect((await api.call('DELETE', `/v1/tunnels/${bad}`, other.apiKey)).status).toBe(404);
  });

  it('shows an unreadable STATE item as a warning on that status, the rest served as usual', async () => {
    const own = await api.newWorkspace('states');
    const id = await create('state', own.apiKey);
    const fine = await create('fine', own.apiKey);
    const sim = gatewaySim(api.table.doc, api.table.tableName);
    await sim.up(id, Date.now(), 'w1', 'c1');
    await sim.beat('w1', Date.now());
    await spoil(keys.tunnelState(id), 'state', 'sideways');

    const list = TunnelListSchema.parse((await api.call('GET', '/v1/tunnels', own.apiKey)).json);
    expect(list.unreadable).toBeUndefined();
    const shown = list.items.find((t) => t.id === id);
    expect(shown?.status.warnings).toEqual([
      {
        code: 'status_unreadable',
        message: expect.stringMatching(/STATE \(state: .*the status shown is the last one recorded/),
        hint: expect.stringMatching(/Nothing to change on your side/),
        since: expect.any(String),
      },
    ]);
    expect(shown?.connect).toBeNull();
    expect(list.items.find((t) => t.id === fine)?.status.warnings).toBeUndefined();
    const status = await api.call('GET', `/v1/tunnels/${id}/status`, own.apiKey);
    expect(status.status).toBe(200);
    expect(StatusSchema.strict().parse(status.json).warnings?.[0]?.code).toBe('status_unreadable');
  });
});

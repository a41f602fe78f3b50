/**
 * API keys as a workspace's resource (CONTRACT.md, Extensions), over DynamoDB Local: several per
 * workspace, listed by prefix and last use, revoked at once; the operator replaces a lost one.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyCache } from '../../../lambda/api/auth';
import { newApiKey, newWorkspaceId, sha256Hex } from '../../../shared/ids';
import { keys } from '../../../shared/store/table';
import { createTestApi } from '../../helpers/api';
import { waitFor } from '../../helpers/wait-for';

type TestApi = Awaited<ReturnType<typeof createTestApi>>;

describe('/v1/api-keys', () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await createTestApi();
  });
  afterAll(() => api.close());

  it('lists the first key as current, by prefix, never the key or its hash', async () => {
    const ws = await api.newWorkspace();
    // The use is recorded off the request's path: the listing shows it once the write has landed.
    const res = await waitFor(
      async () => {
        const listed = await api.call('GET', '/v1/api-keys', ws.apiKey);
        return listed.json.items?.[0]?.lastUsedAt ? listed : undefined;
      },
      10_000,
      { what: 'lastUsedAt of the first key' },
    );
    expect(res.status).toBe(200);
    expect(res.json.items).toEqual([
      {
        id: expect.stringMatching(/^key_[a-z2-7]{16}$/),
        prefix: ws.apiKey.slice(0, 10),
        createdAt: expect.any(String),
        lastUsedAt: expect.any(String),
        current: true,
      },
    ]);
    expect(JSON.stringify(res.json)).not.toContain(ws.apiKey);
    expect(JSON.stringify(res.json)).not.toContain(sha256Hex(ws.apiKey));
  });

  it('creates a second key that works at once, then revokes the first with it', async () => {
    const ws = await api.newWorkspace();
    const created = await api.call('POST', '/v1/api-keys', ws.apiKey);
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({
      workspaceId: ws.id,
      prefix: String(created.json.apiKey).slice(0, 10),
    });
    const second = String(created.json.apiKey);
    expect(second).toMatch(/^tk_[A-Za-z0-9_-]{43}$/);

    const listed = await api.call('GET', '/v1/api-keys', second);
    expect(listed.json.items.map((k: { current: boolean }) => k.current)).toEqual([false, true]);
    const first = listed.json.items[0].id;

    expect((await api.call('DELETE', `/v1/api-keys/${first}`, second)).status).toBe(204);
    const refused = await api.call('GET', '/v1/tunnels', ws.apiKey);
    expect(refused.status).toBe(401);
    expect((await api.call('GET', '/v1/api-keys', second)).json.items).toHaveLength(1);
    // Gone is gone: a second revoke of the same id is a 404.
    expect((await api.call('DELETE', `/v1/api-keys/${first}`, second)).status).toBe(404);
  });

  it('refuses to revoke the last key, with a message that says what to do', async () => {
    const ws = await api.newWorkspace();
    const [only] = (await api.call('GET', '/v1/api-keys', ws.apiKey)).json.items;
    const res = await api.call('DELETE', `/v1/api-keys/${only.id}`, ws.apiKey);
    expect(res.status).toBe(409);
    expect(res.json.error).toMatchObject({
      code: 'conflict',
      message: expect.stringContaining('create another'),
    });
    expect((await api.call('GET', '/v1/tunnels', ws.apiKey)).status).toBe(200);
  });

  it("keeps one workspace's keys out of another's reach", async () => {
    const a = await api.newWorkspace();
    const b = await api.newWorkspace();
    await api.call('POST', '/v1/api-keys', a.apiKey);
    const [aKey] = (await api.call('GET', '/v1/api-keys', a.apiKey)).json.items;
    expect((await api.call('DELETE', `/v1/api-keys/${aKey.id}`, b.apiKey)).status).toBe(404);
    expect((await api.call('GET', '/v1/api-keys', b.apiKey)).json.items).toHaveLength(1);
    expect((await api.call('GET', '/v1/api-keys', a.apiKey)).json.items).toHaveLength(2);
  });

  it('answers 409 quota_exceeded past the keys a workspace may hold', async () => {
    const ws = await api.newWorkspace();
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await api.call('POST', '/v1/api-keys', ws.apiKey)).status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(9);
    const last = await api.call('POST', '/v1/api-keys', ws.apiKey);
    expect(last.status).toBe(409);
    expect(last.json.error).toMatchObject({
      code: 'quota_exceeded',
      details: { limit: 'apiKeysPerWorkspace', max: 10 },
    });
  });

  it('says which field is wrong for an id that is not a key id', async () => {
    const ws = await api.newWorkspace();
    const res = await api.call('DELETE', '/v1/api-keys/tun_abcdefghijklmnop', ws.apiKey);
    expect(res.status).toBe(422);
    expect(res.json.error.details).toEqual([{ path: 'id', message: 'is not an API key id' }]);
  });

  it('adopts a key stored before keys had ids: it authenticates, is listed, and its workspace can add keys', async () => {
    const id = newWorkspaceId();
    const legacyKey = newApiKey();
    const createdAt = new Date().toISOString();
    // As the store wrote them before: the workspace, and the key's hash mapped to it.
    await api.table.doc.send(
      new PutCommand({
        TableName: api.table.tableName,
        Item: { ...keys.workspace(id), id, name: 'old', createdAt },
      }),
    );
    await api.table.doc.send(
      new PutCommand({
        TableName: api.table.tableName,
        Item: { ...keys.apiKey(sha256Hex(legacyKey)), workspaceId: id, createdAt },
      }),
    );
    const listed = await api.call('GET', '/v1/api-keys', legacyKey);
    expect(listed.status).toBe(200);
    expect(listed.json.items).toEqual([
      expect.objectContaining({ id: expect.stringMatching(/^key_/), prefix: null, createdAt, current: true }),
    ]);
    // It had one key, so it may not revoke it; with a second it may.
    expect((await api.call('DELETE', `/v1/api-keys/${listed.json.items[0].id}`, legacyKey)).status).toBe(409);
    const second = (await api.call('POST', '/v1/api-keys', legacyKey)).json.apiKey;
    expect((await api.call('DELETE', `/v1/api-keys/${listed.json.items[0].id}`, second)).status).toBe(204);
    expect((await api.call('GET', '/v1/tunnels', legacyKey)).status).toBe(401);
    const workspaces = await api.call('GET', '/v1/admin/workspaces?limit=100', api.adminToken);
    expect(workspaces.json.items.map((w: { id: string }) => w.id)).toContain(id);
  });
});

describe('/v1/admin: workspaces and a lost key', () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await createTestApi();
  });
  afterAll(() => api.close());

  it('lists workspaces a page at a time, oldest first', async () => {
    const made: string[] = [];
    for (const name of ['one', 'two', 'three']) {
      const res = await api.call('POST', '/v1/admin/workspaces', api.adminToken, { name });
      made.push(res.json.id);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await api.call(
        'GET',
        `/v1/admin/workspaces?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        api.adminToken,
      );
      expect(res.status).toBe(200);
      expect(res.json.items.length).toBeLessThanOrEqual(2);
      seen.push(...res.json.items.map((w: { id: string }) => w.id));
      cursor = res.json.nextCursor;
    } while (cursor);
    expect(seen.filter((id) => made.includes(id))).toEqual(made);
    expect((await api.call('GET', '/v1/admin/workspaces', undefined)).status).toBe(401);
    expect((await api.call('GET', '/v1/admin/workspaces?cursor=nope', api.adminToken)).status).toBe(422);
  });

  it('replaces a lost key: the operator issues one, it revokes the lost one, the tunnels are all there', async () => {
    const ws = await api.newWorkspace();
    const tunnel = await api.call('POST', '/v1/tunnels', ws.apiKey, {
      type: 'reverse',
      name: 'db',
      service: { host: '127.0.0.1', port: 5432 },
    });
    expect(tunnel.status).toBe(201);
    // The key is lost: the operator issues a new one for the workspace.
    const issued = await api.call('POST', `/v1/admin/workspaces/${ws.id}/api-keys`, api.adminToken);
    expect(issued.status).toBe(201);
    expect(issued.json).toMatchObject({ workspaceId: ws.id, apiKey: expect.stringMatching(/^tk_/) });
    const fresh = String(issued.json.apiKey);
    const lost = (await api.call('GET', '/v1/api-keys', fresh)).json.items.find(
      (k: { current: boolean }) => !k.current,
    );
    expect((await api.call('DELETE', `/v1/api-keys/${lost.id}`, fresh)).status).toBe(204);
    expect((await api.call('GET', '/v1/tunnels', ws.apiKey)).status).toBe(401);
    const listed = await api.call('GET', '/v1/tunnels', fresh);
    expect(listed.json.items.map((t: { id: string }) => t.id)).toEqual([tunnel.json.id]);
  });

  it('answers 404 for a workspace that does not exist, and 401 without the admin token', async () => {
    const res = await api.call('POST', `/v1/admin/workspaces/${newWorkspaceId()}/api-keys`, api.adminToken);
    expect(res.status).toBe(404);
    const ws = await api.newWorkspace();
    expect((await api.call('POST', `/v1/admin/workspaces/${ws.id}/api-keys`, ws.apiKey)).status).toBe(401);
  });
});

describe('ApiKeyCache marks of use', () => {
  it('marks a key at most once a resolution, and again at once after a failed write', () => {
    const cache = new ApiKeyCache();
    expect(cache.shouldMarkUsed('h', 1_000)).toBe(true);
    expect(cache.shouldMarkUsed('h', 2_000)).toBe(false);
    cache.markFailed('h');
    expect(cache.shouldMarkUsed('h', 3_000)).toBe(true);
    expect(cache.shouldMarkUsed('h', 4_000)).toBe(false);
  });
});

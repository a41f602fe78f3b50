/**
 * Quotas and per-source limits (issue 12, acceptance 7): one workspace cannot take every port, and
 * callers without valid credentials cannot make the API read the table without bound.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi } from '../../helpers/api';
import { sshKeygen } from '../../helpers/customer';

type Api = Awaited<ReturnType<typeof createTestApi>>;

const reverse = (name: string, publicKey: string) => ({
  type: 'reverse',
  name,
  service: { host: 'db.internal', port: 5432 },
  publicKey,
});

describe('MAX_TUNNELS_PER_WORKSPACE', () => {
  let api: Api;
  let publicKey: string;
  beforeAll(async () => {
    api = await createTestApi();
    publicKey = (await sshKeygen('ed25519')).publicKey;
  });
  afterAll(() => api.close());

  it('answers the 101st create with 409 quota_exceeded naming the limit; other workspaces are unaffected', async () => {
    const full = await api.newWorkspace('full');
    const other = await api.newWorkspace('other');
    // Concurrent creates near the limit: exactly 100 land, however they race.
    const statuses: number[] = [];
    for (let batch = 0; batch < 5; batch++) {
      const created = await Promise.all(
        Array.from({ length: 21 }, (_, i) =>
          api.call('POST', '/v1/tunnels', full.apiKey, reverse(`t${batch}-${i}`, publicKey)),
        ),
      );
      statuses.push(...created.map((r) => r.status));
    }
    expect(statuses.filter((s) => s === 201)).toHaveLength(100);
    expect(statuses.filter((s) => s === 409)).toHaveLength(5);

    const refused = await api.call('POST', '/v1/tunnels', full.apiKey, reverse('one-more', publicKey));
    expect(refused.status).toBe(409);
    expect(refused.json.error).toEqual({
      code: 'quota_exceeded',
      message: expect.stringContaining('limit of 100 tunnels'),
      details: { limit: 'tunnelsPerWorkspace', max: 100 },
    });
    // A standard tunnel is refused before any key is generated or secret written.
    const standard = await api.call('POST', '/v1/tunnels', full.apiKey, {
      type: 'standard',
      name: 'std',
      ssh: { host: 'bastion.example.com', user: 'tunnel' },
      service: { host: '10.0.0.5', port: 5432 },
    });
    expect(standard.status).toBe(409);

    expect((await api.call('POST', '/v1/tunnels', other.apiKey, reverse('fine', publicKey))).status).toBe(
      201,
    );

    // A delete frees a place.
    const page = await api.call('GET', '/v1/tunnels?limit=1', full.apiKey);
    const victim = page.json.items[0].id;
    expect((await api.call('DELETE', `/v1/tunnels/${victim}`, full.apiKey)).status).toBe(204);
    expect((await api.call('POST', '/v1/tunnels', full.apiKey, reverse('again', publicKey))).status).toBe(
      201,
    );
    expect((await api.call('POST', '/v1/tunnels', full.apiKey, reverse('over', publicKey))).status).toBe(409);
  }, 120_000);

  it('takes the limit from the configuration', async () => {
    const small = api.appWith({ env: { MAX_TUNNELS_PER_WORKSPACE: '2' } });
    const ws = await api.newWorkspace('small');
    const post = async (name: string) =>
      (
        await small.request('/v1/tunnels', {
          method: 'POST',
          headers: { Authorization: `Bearer ${ws.apiKey}`, 'Content-Type': 'application/json' },
          body: JSON.stringify(reverse(name, publicKey)),
        })
      ).status;
    expect([await post('a'), await post('b'), await post('c')]).toEqual([201, 201, 409]);
  });
});

describe('requests without valid credentials', () => {
  let api: Api;
  beforeAll(async () => {
    api = await createTestApi();
  });
  afterAll(() => api.close());

  it('are limited per source address with 429 and Retry-After; valid keys from the same address still pass', async () => {
    const ws = await api.newWorkspace();
    const app = api.appWith({ limits: { unauthenticatedPerSource: { ratePerSec: 1, burst: 5 } } });
    const get = async (key: string) =>
      app.request('/v1/tunnels', { headers: { Authorization: `Bearer ${key}` } });
    // A valid key is looked up once, then served from the cache: it spends one token, not one per request.
    expect((await get(ws.apiKey)).status).toBe(200);
    const bad: number[] = [];
    for (let i = 0; i < 8; i++) bad.push((await get(`tk_wrong_${i}_0123456789abcdef`)).status);
    expect(bad.slice(0, 4)).toEqual([401, 401, 401, 401]);
    expect(bad.slice(5)).toEqual([429, 429, 429]);
    const limited = await get('tk_wrong_again_0123456789abcdef');
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
    expect((await get(ws.apiKey)).status).toBe(200);
    // The operator token's failures draw on the same budget.
    const admin = await app.request('/v1/admin/workspaces', {
      method: 'POST',
      headers: { Authorization: 'Bearer not-the-admin-token-0123456789' },
      body: '{"name":"x"}',
    });
    expect(admin.status).toBe(429);
  });

  it("a valid key's burst that finds no cached entry is one lookup and one charge, not one per request", async () => {
    const ws = await api.newWorkspace('bursty');
    const app = api.appWith({ limits: { unauthenticatedPerSource: { ratePerSec: 1, burst: 5 } } });
    const statuses = await Promise.all(
      Array.from({ length: 30 }, async () => {
        const res = await app.request('/v1/tunnels', { headers: { Authorization: `Bearer ${ws.apiKey}` } });
        return res.status;
      }),
    );
    expect(statuses).toEqual(Array(30).fill(200));
    // Four tokens are left for callers without credentials: the burst spent one.
    const wrong: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await app.request('/v1/tunnels', {
        headers: { Authorization: `Bearer tk_wrong_${i}_0123456789` },
      });
      wrong.push(res.status);
    }
    expect(wrong).toEqual([401, 401, 401, 401, 429]);
  });
});

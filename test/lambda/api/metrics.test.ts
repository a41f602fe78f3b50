/** `GET /metrics` on the API: the operator token only; where no gateway shares the process (the Lambda), 404. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi } from '../../helpers/api';

describe('GET /metrics on the API', () => {
  let api: Awaited<ReturnType<typeof createTestApi>>;
  beforeAll(async () => {
    api = await createTestApi();
  });
  afterAll(() => api.close());

  it('refuses API keys and no credentials, and says where the figures are when it has none', async () => {
    const ws = await api.newWorkspace();
    expect((await api.call('GET', '/metrics', undefined)).status).toBe(401);
    expect((await api.call('GET', '/metrics', ws.apiKey)).status).toBe(401);
    const res = await api.call('GET', '/metrics', api.adminToken);
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe('not_found');
    expect(res.json.error.message).toMatch(/gateway.*CloudWatch/);
  });
});

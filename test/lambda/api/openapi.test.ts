/**
 * `/openapi.json` and the router are one table (lambda/api/route-spec.ts): every route the app
 * answers is in the document and every operation in the document is answered, each with an
 * operationId, a summary, a tag, its security and its error statuses. (That each answer's status
 * is listed is checked on every API test's calls: test/helpers/documented-statuses.ts.)
 */

import { OpenAPIHono } from '@hono/zod-openapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addRoute, NO_SECURITY } from '../../../lambda/api/route-spec';
import { createTestApi } from '../../helpers/api';
import { withDocumentedStatuses } from '../../helpers/documented-statuses';

type TestApi = Awaited<ReturnType<typeof createTestApi>>;
// biome-ignore lint/suspicious/noExplicitAny: the document is probed field by field below
type Json = any;

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

describe('/openapi.json', () => {
  let api: TestApi;
  let doc: Json;

  beforeAll(async () => {
    api = await createTestApi();
    doc = (await api.call('GET', '/openapi.json', undefined)).json;
  });
  afterAll(() => api.close());

  const operations = () =>
    Object.entries<Json>(doc.paths).flatMap(([path, item]) =>
      METHODS.filter((m) => item[m]).map((method) => ({ path, method, op: item[method] })),
    );

  it("lists exactly the routes the app answers (walking the router's own table)", () => {
    const routed = api.app.routes
      // Middleware is registered as ALL; HEAD is answered by GET handlers.
      .filter((r) => METHODS.includes(r.method.toLowerCase()))
      .map((r) => `${r.method.toLowerCase()} ${r.path.replaceAll(/:(\w+)/g, '{$1}')}`);
    const documented = operations().map((o) => `${o.method} ${o.path}`);
    expect([...new Set(routed)].sort()).toEqual(documented.sort());
    expect(documented.length).toBeGreaterThanOrEqual(17);
  });

  it('gives every operation a unique operationId, a summary, one declared tag and its security', () => {
    const tags = new Set(doc.tags.map((t: Json) => t.name));
    const ids = operations().map((o) => o.op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { path, method, op } of operations()) {
      const at = `${method} ${path}`;
      expect(op.operationId, at).toMatch(/^[a-z][A-Za-z]+$/);
      expect(op.summary, at).toMatch(/\S/);
      expect(op.tags, at).toHaveLength(1);
      expect(tags.has(op.tags[0]), at).toBe(true);
      expect(Array.isArray(op.security), at).toBe(true);
      for (const requirement of op.security) {
        for (const scheme of Object.keys(requirement)) {
          expect(doc.components.securitySchemes[scheme], at).toBeDefined();
        }
      }
    }
  });

  it('describes the errors of every route behind credentials, and the servers it is served from', () => {
    for (const { path, method, op } of operations()) {
      if (op.security.length === 0) continue;
      for (const status of ['401', '429', '500', '503']) {
        expect(
          op.responses[status]?.content?.['application/json'],
          `${method} ${path} ${status}`,
        ).toBeDefined();
      }
      if (path.includes('{id}')) expect(op.responses['404'], `${method} ${path} 404`).toBeDefined();
      if (op.requestBody) expect(op.responses['400'], `${method} ${path} 400`).toBeDefined();
    }
    expect(doc.servers).toEqual([expect.objectContaining({ url: 'http://localhost' })]);
  });

  it('holds the app to it: an answer whose status the document does not list fails the call', async () => {
    const app = withDocumentedStatuses(new OpenAPIHono());
    addRoute(
      app,
      {
        method: 'get',
        path: '/teapot',
        operationId: 'getTeapot',
        summary: 'A route that grew a status nobody described',
        tags: ['Service'],
        security: NO_SECURITY,
        responses: { 200: { description: 'Fine' } },
      },
      (c) => c.body(null, 418),
    );
    await expect(app.request('/teapot')).rejects.toThrow(
      /GET \/teapot answered 418, which \/openapi.json does not list/,
    );
  });
});

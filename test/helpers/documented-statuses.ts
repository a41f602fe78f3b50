/**
 * Holds the app to its own document: every answer the app gives in a test must be a status that
 * `/openapi.json` lists for that operation. The helpers that build apps for tests (api.ts) wrap
 * them with this, so each API test also checks that the document says what the code does.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';

interface Operation {
  method: string;
  path: string;
  pattern: RegExp;
  statuses: Set<string>;
}

/** The document's operations, each with the statuses it lists. */
export function documentedOperations(app: OpenAPIHono): Operation[] {
  const doc = app.getOpenAPI31Document({ openapi: '3.1.0', info: { title: 'test', version: '0' } });
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, operation] of Object.entries(item ?? {})) {
      if (!operation || typeof operation !== 'object' || !('responses' in operation)) continue;
      const source = path.replaceAll(/\{\w+\}/g, '[^/]+');
      operations.push({
        method: method.toUpperCase(),
        path,
        pattern: new RegExp(`^${source}$`),
        statuses: new Set(Object.keys(operation.responses ?? {})),
      });
    }
  }
  return operations;
}

/** Throws from `fetch` (so the test fails, naming it) when an answer's status is not documented. */
export function withDocumentedStatuses<T extends OpenAPIHono>(app: T): T {
  let operations: Operation[] | undefined;
  const fetch = app.fetch.bind(app);
  app.fetch = async (request, ...rest) => {
    const res = await fetch(request, ...rest);
    operations ??= documentedOperations(app);
    const { pathname } = new URL(request.url);
    // HEAD is GET without the body (Hono answers it with the GET handler), as HTTP has it.
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    // A literal path wins over a templated one (`/v1/tunnels/{id}` would also match `/openapi.json`-like names).
    const candidates = operations.filter((o) => o.method === method && o.pattern.test(pathname));
    const operation = candidates.find((o) => o.path === pathname) ?? candidates[0];
    if (!operation) {
      if (res.status !== 404 && res.status !== 413 && res.status !== 401) {
        throw new Error(
          `${request.method} ${pathname} answered ${res.status}, but /openapi.json has no such operation`,
        );
      }
      return res;
    }
    if (!operation.statuses.has(String(res.status)) && !operation.statuses.has('default')) {
      throw new Error(
        `${request.method} ${operation.path} answered ${res.status}, which /openapi.json does not list for it (it lists ${[...operation.statuses].join(', ')})`,
      );
    }
    return res;
  };
  return app;
}

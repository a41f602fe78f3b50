/**
 * The customer console (console/): `GET /` is its page and `GET /console/{file}` its script and
 * stylesheet, all from this API, so the console needs no other origin and calls `/v1/*` as a
 * same-origin client. The page's policy allows this origin's scripts, styles and API only, and
 * enforces Trusted Types: nothing the console renders can become markup or script.
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { etag } from 'hono/etag';
import { secureHeaders } from 'hono/secure-headers';
import type { Logger } from '../../../shared/logger';
import { CONSOLE_INDEX, type ConsoleSource } from '../console-files';
import { AssetTable } from '../docs-assets';
import { errorResponse } from '../errors';
import { addRoute, errors, NO_SECURITY } from '../route-spec';
import { sendAsset } from './docs';

/**
 * `default-src 'self'` with every fetch directive the console uses spelled out; no inline script or
 * style (the page has none), no plugins, frames, base changes or form posts (forms are handled by
 * the script), and Trusted Types required: the DOM's HTML sinks refuse plain strings.
 */
export const CONSOLE_CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
  frameAncestors: ["'none'"],
  requireTrustedTypesFor: ["'script'"],
  trustedTypes: ["'none'"],
};

/** What the file names of a console build look like (`console-<hash>.js`); anything else is 404. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

type Table = AssetTable<string>;

export function consoleRoutes(source: ConsoleSource | undefined, logger: Logger): OpenAPIHono {
  const app = new OpenAPIHono();
  const headers = secureHeaders({
    contentSecurityPolicy: CONSOLE_CONTENT_SECURITY_POLICY,
    // The key the console holds is not the referrer's business anywhere.
    referrerPolicy: 'no-referrer',
  });
  let table: Promise<Table> | undefined;
  const files = (): Promise<Table> => {
    if (!source) throw new ConsoleMissing('this deployment does not serve the console');
    if (!table) {
      table = source().then(
        (built) =>
          new AssetTable(
            Object.fromEntries(
              built.map((f) => [f.name, { type: f.type, read: async () => Buffer.from(f.body) }]),
            ),
          ),
      );
      table.catch((err: unknown) => {
        table = undefined;
        logger.error('console files unavailable', { err });
      });
    }
    return table;
  };

  addRoute(
    app,
    {
      method: 'get',
      path: '/',
      operationId: 'getConsole',
      summary: 'The customer console, as a web page',
      description:
        'Sign in with an API key; add, watch, test and fix tunnels. The page and its files come from this API only.',
      tags: ['Service'],
      security: NO_SECURITY,
      responses: {
        200: { content: { 'text/html': { schema: z.string() } }, description: 'The page, with an `ETag`' },
        304: { description: 'Unchanged since the ETag given in If-None-Match' },
        ...errors([404, 500], { 404: '`not_found`: this deployment does not serve the console' }),
      },
    },
    headers,
    etag(),
    async (c) => {
      const table = await consoleFiles(c, files);
      if (table instanceof Response) return table;
      const page = await table.get(CONSOLE_INDEX);
      c.header('Cache-Control', 'no-cache');
      return c.body(new Uint8Array(page.body), 200, { 'Content-Type': page.type });
    },
  );

  addRoute(
    app,
    {
      method: 'get',
      path: '/console/{file}',
      operationId: 'getConsoleAsset',
      summary: "A file of the console (its script and stylesheet, named by their content's hash)",
      tags: ['Service'],
      security: NO_SECURITY,
      request: { params: z.object({ file: z.string().openapi({ example: 'console-AB12CD34.js' }) }) },
      responses: {
        200: {
          content: { 'text/javascript': { schema: z.string() }, 'text/css': { schema: z.string() } },
          description: 'The file, gzipped when the client accepts it; `ETag`, cached for a year',
        },
        304: { description: 'Unchanged since the ETag given in If-None-Match' },
        ...errors([404, 500], { 404: "`not_found`: not one of the console's files" }),
      },
    },
    headers,
    etag(),
    async (c) => {
      const table = await consoleFiles(c, files);
      if (table instanceof Response) return table;
      const file = c.req.param('file') ?? '';
      if (!FILE_NAME.test(file) || file === CONSOLE_INDEX || !table.has(file)) {
        return errorResponse(c, 404, 'not_found', `no such file of the console: ${file.slice(0, 100)}`);
      }
      return sendAsset(c, await table.get(file));
    },
  );
  return app;
}

class ConsoleMissing extends Error {
  override name = 'ConsoleMissing';
}

/** The console's files, or the answer to give when there are none. */
async function consoleFiles(c: Context, files: () => Promise<Table>): Promise<Table | Response> {
  try {
    return await files();
  } catch (err) {
    if (err instanceof ConsoleMissing) return errorResponse(c, 404, 'not_found', err.message);
    return errorResponse(c, 500, 'internal_error', 'the console could not be loaded; the log says why');
  }
}

/**
 * `GET /docs`: the API reference as a web page, rendered in the browser from this API's own
 * `/openapi.json` by Swagger UI, whose files this API serves itself (`/docs/assets/<file>`): the
 * page fetches nothing from any other host, and its Content-Security-Policy says so.
 *
 * Why Swagger UI (`swagger-ui-dist`): maintained by SmartBear with a release every few weeks,
 * renders OpenAPI 3.1, and ships as prebuilt static files (1.7 MB of JS and 0.2 MB of CSS, 0.5 MB
 * gzipped) that need nothing else at run time, with no engines field (so it installs at the root,
 * not in runtime-deps/); the page loads no fonts and sends no telemetry, and the one outside call it would
 * make (the validator badge, validator.swagger.io) is switched off below. The package depends on
 * `@scarf/scarf`, an install-time analytics script: package.json's `allowScripts` denies it.
 * Weighed against it: Redoc 3 declares Node >= 22 and depends on an OpenTelemetry package; Scalar
 * declares Node >= 22, has ~30 dependencies and loads its fonts from fonts.scalar.com by default;
 * Stoplight Elements brings React Router, react-query and lodash, and Scarf as well.
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { etag } from 'hono/etag';
import { secureHeaders } from 'hono/secure-headers';
import { AssetTable, inlineAsset, type LoadedAsset, packageFile } from '../docs-assets';
import { errorResponse } from '../errors';
import { addRoute, errors, NO_SECURITY } from '../route-spec';

const JS = 'text/javascript; charset=utf-8'; // RFC 9239; Hono's Lambda adapter also sends it as text, not base64
const CSS = 'text/css; charset=utf-8';

/**
 * The page's own script: no inline script, so the policy needs no 'unsafe-inline' for scripts.
 * URLs are relative to the page (`/docs`), so the page also works where the API sits under a path.
 */
const INIT_SCRIPT = `'use strict';
SwaggerUIBundle({
  url: 'openapi.json',
  dom_id: '#docs',
  deepLinking: true,
  // The validator badge would send the document to validator.swagger.io.
  validatorUrl: null,
  // The page shows this API's document only, never one named in its query string.
  queryConfigEnabled: false,
});
`;

/** The renderer's files in its package; the API Lambda carries them beside its bundle. */
const RENDERER = { js: 'swagger-ui-dist/swagger-ui-bundle.js', css: 'swagger-ui-dist/swagger-ui.css' };
export const DOCS_PACKAGE_FILES = Object.values(RENDERER);

/** The page's files; a request names one of these or gets a 404. */
const assets = new AssetTable({
  'swagger-ui.js': packageFile(RENDERER.js, JS),
  'swagger-ui.css': packageFile(RENDERER.css, CSS),
  'docs.js': inlineAsset(INIT_SCRIPT, JS),
});
export const DOCS_ASSET_NAMES = assets.names;

/**
 * As narrow as Swagger UI allows: scripts, styles and the document from this origin only; images
 * also as `data:` URIs (the CSS's icons); no frames, plugins, forms or base URL changes.
 */
const CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
  frameAncestors: ["'none'"],
};

/** Assets are addressed with their content hash in the query (`?v=`): a new version is a new URL. */
const ASSET_CACHE = 'public, max-age=31536000, immutable';

export function docsRoutes(): OpenAPIHono {
  const app = new OpenAPIHono();
  const headers = secureHeaders({ contentSecurityPolicy: CONTENT_SECURITY_POLICY });

  addRoute(
    app,
    {
      method: 'get',
      path: '/',
      operationId: 'getDocs',
      summary: 'This API reference, as a web page',
      description:
        'Renders `/openapi.json` in the browser with Swagger UI; every file the page loads comes from this API.',
      tags: ['Service'],
      security: NO_SECURITY,
      responses: {
        200: { content: { 'text/html': { schema: z.string() } }, description: 'The page, with an `ETag`' },
        304: { description: 'Unchanged since the ETag given in If-None-Match' },
        ...errors([500]),
      },
    },
    headers,
    etag(),
    async (c) => {
      const versions = await Promise.all(DOCS_ASSET_NAMES.map(async (n) => (await assets.get(n)).version));
      const v = Object.fromEntries(DOCS_ASSET_NAMES.map((n, i) => [n, versions[i]]));
      c.header('Cache-Control', 'no-cache');
      return c.html(page(v));
    },
  );

  addRoute(
    app,
    {
      method: 'get',
      path: '/assets/{file}',
      operationId: 'getDocsAsset',
      summary: "A file of the reference page (its renderer's script and styles)",
      tags: ['Service'],
      security: NO_SECURITY,
      request: { params: z.object({ file: z.enum(DOCS_ASSET_NAMES) }) },
      responses: {
        200: {
          content: { 'text/javascript': { schema: z.string() }, 'text/css': { schema: z.string() } },
          description: 'The file, gzipped when the client accepts it; `ETag`, cached for a year',
        },
        304: { description: 'Unchanged since the ETag given in If-None-Match' },
        ...errors([404, 500], { 404: "`not_found`: not one of the page's files" }),
      },
    },
    headers,
    etag(),
    async (c) => {
      const file = c.req.param('file') ?? '';
      if (!assets.has(file)) {
        return errorResponse(
          c,
          404,
          'not_found',
          `no such file of the docs page (${DOCS_ASSET_NAMES.join(', ')})`,
        );
      }
      return sendAsset(c, await assets.get(file));
    },
  );
  return app;
}

/** An asset with its type, a year of caching and its ETag, gzipped when the client accepts it. */
export function sendAsset(c: Context, asset: LoadedAsset): Response {
  const gzipped = acceptsGzip(c.req.header('Accept-Encoding'));
  c.header('Content-Type', asset.type);
  c.header('Cache-Control', ASSET_CACHE);
  c.header('Vary', 'Accept-Encoding');
  // Each encoding is its own representation, with its own validator (RFC 9110, 8.8.3).
  c.header('ETag', gzipped ? `${asset.etag.slice(0, -1)}-gzip"` : asset.etag);
  if (gzipped) c.header('Content-Encoding', 'gzip');
  return c.body(new Uint8Array(gzipped ? asset.gzipped : asset.body));
}

/**
 * Whether an `Accept-Encoding` header admits gzip: named with a non-zero `q` (or none), or not
 * named and admitted by `*` (RFC 9110, 12.5.3).
 */
export function acceptsGzip(header: string | undefined): boolean {
  const weights = new Map<string, number>();
  for (const part of (header ?? '').split(',')) {
    const [coding = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    weights.set(coding, q === undefined ? 1 : Number(q.slice(2)));
  }
  const q = weights.get('gzip') ?? weights.get('*') ?? 0;
  return q > 0;
}

function page(v: Record<string, string | undefined>): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tunnelkeeper API reference</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="docs/assets/swagger-ui.css?v=${v['swagger-ui.css']}">
</head>
<body>
<div id="docs"></div>
<script src="docs/assets/swagger-ui.js?v=${v['swagger-ui.js']}"></script>
<script src="docs/assets/docs.js?v=${v['docs.js']}"></script>
</body>
</html>
`;
}

/**
 * The files behind `GET /docs`: a fixed table of names (a request picks an entry, it never names a
 * path), each read once per process and kept in memory with its ETag and a gzip copy. The table is
 * a few files, so what it holds is bounded (about 2.5 MiB with the renderer).
 *
 * The renderer's files come from its npm package, found the way Node resolves a module from here:
 * the repository's `node_modules` under `npm start` and in tests, and in the API Lambda the copy
 * that `cdk/lib/bundles.ts` puts under `node_modules/` beside the bundle (API_BUNDLE_PACKAGE_FILES).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

const gzipAsync = promisify(gzip);
const resolveFromHere = createRequire(import.meta.url).resolve;

export interface AssetSource {
  /** The `Content-Type` it is served with. */
  type: string;
  read(): Promise<Buffer>;
}

export interface LoadedAsset {
  type: string;
  body: Buffer;
  gzipped: Buffer;
  /** A strong ETag: a hash of the content. */
  etag: string;
  /** A short form of the hash, for URLs that change when the content does. */
  version: string;
}

/** A file of an installed npm package, e.g. `swagger-ui-dist/swagger-ui.css`. */
export function packageFile(specifier: string, type: string): AssetSource {
  return { type, read: () => readFile(resolveFromHere(specifier)) };
}

/** Content built into the code (the page's own script). */
export function inlineAsset(text: string, type: string): AssetSource {
  return { type, read: async () => Buffer.from(text, 'utf8') };
}

export class AssetTable<Name extends string> {
  readonly #sources: Record<Name, AssetSource>;
  readonly #loaded = new Map<Name, Promise<LoadedAsset>>();

  constructor(sources: Record<Name, AssetSource>) {
    this.#sources = sources;
  }

  get names(): Name[] {
    return Object.keys(this.#sources) as Name[];
  }

  /** Whether `name` is one of the table's entries (never a path: no lookup outside the table). */
  has(name: string): name is Name {
    return Object.hasOwn(this.#sources, name);
  }

  /** The asset, read on first use; a failed read is not kept, so the next request tries again. */
  get(name: Name): Promise<LoadedAsset> {
    let loading = this.#loaded.get(name);
    if (!loading) {
      loading = load(this.#sources[name]);
      loading.catch(() => this.#loaded.delete(name));
      this.#loaded.set(name, loading);
    }
    return loading;
  }
}

async function load(source: AssetSource): Promise<LoadedAsset> {
  const body = await source.read();
  const hash = createHash('sha256').update(body).digest('base64url');
  return {
    type: source.type,
    body,
    gzipped: await gzipAsync(body),
    etag: `"${hash}"`,
    version: hash.slice(0, 12),
  };
}

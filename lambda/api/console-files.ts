/**
 * Where the customer console's built files come from: `npm start` builds them in memory at start
 * (console/build.ts), the API Lambda reads the copy written beside its bundle at synth
 * (cdk/lib/bundles.ts). Either way the API serves a fixed set of names read once per process.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ConsoleFile {
  /** The file's name, as `/console/<name>` serves it (`index.html` is served at `/`). */
  name: string;
  /** Its `Content-Type`. */
  type: string;
  body: Uint8Array;
}

/** The console's files, produced on first call; a failure is not kept, the next call tries again. */
export type ConsoleSource = () => Promise<ConsoleFile[]>;

export const CONSOLE_INDEX = 'index.html';

/** A bundle holds a handful of files; anything beyond this is not the console's. */
const MAX_FILES = 16;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** The files written to `dir` by `writeConsole` (the API Lambda's copy). */
export function consoleFromDirectory(dir: string): ConsoleSource {
  return async () => {
    const names = (await readdir(dir)).filter((name) => typeOf(name) !== undefined).slice(0, MAX_FILES);
    if (!names.includes(CONSOLE_INDEX)) throw new Error(`no ${CONSOLE_INDEX} in ${dir}`);
    return Promise.all(
      names.map(async (name) => ({ name, type: typeOf(name) ?? '', body: await readFile(join(dir, name)) })),
    );
  };
}

export function typeOf(name: string): string | undefined {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? undefined : TYPES[name.slice(dot)];
}

/** `source`, run once and kept; a failed run is forgotten so the next request builds again. */
export function onceConsole(source: ConsoleSource): ConsoleSource {
  let pending: Promise<ConsoleFile[]> | undefined;
  return () => {
    if (!pending) {
      pending = source();
      pending.catch(() => {
        pending = undefined;
      });
    }
    return pending;
  };
}

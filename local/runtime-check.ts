/**
 * Whether `npm start` runs on the Node this repository pins (the `node` devDependency that `npm ci`
 * installs and npm puts first on PATH). Another major, such as Debian's own Node when the stack is
 * started without npm, runs code that was never tested on it.
 */
import { readFileSync } from 'node:fs';

export interface RuntimeMismatch {
  running: string;
  pinned: string;
}

export function runtimeMismatch(
  packageJsonPath: string,
  running = process.version,
): RuntimeMismatch | undefined {
  const pkg: unknown = JSON.parse(readFileSync(packageJsonPath, 'utf8'));
  const devDependencies =
    pkg && typeof pkg === 'object' && 'devDependencies' in pkg ? pkg.devDependencies : undefined;
  const pinned =
    devDependencies && typeof devDependencies === 'object' && 'node' in devDependencies
      ? String(devDependencies.node)
      : undefined;
  if (!pinned) return undefined;
  const major = (version: string) => /^v?(\d+)\./.exec(version)?.[1];
  return major(running) === major(pinned) ? undefined : { running, pinned: `v${pinned}` };
}

/** How much room a directory's file system has left: what tells "full" from other write failures. */
import { statfs } from 'node:fs/promises';

/** Room for a few writes (a secret and its temp file, a page of SQLite); below it a disk counts as full. */
export const MIN_FREE_BYTES = 256 * 1024;

/**
 * Bytes an unprivileged writer may still use on the file system holding `dir` (`df`'s "Avail"),
 * or undefined when the directory does not exist (yet).
 */
export async function availableBytes(dir: string): Promise<number | undefined> {
  try {
    const stats = await statfs(dir);
    return stats.bavail * stats.bsize;
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return undefined;
    throw err;
  }
}

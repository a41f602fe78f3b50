/** The long-running files named in the sequencer exist: a renamed one would quietly start last again. */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LONG_RUNNING_FILES } from './sequencer';

describe('the test sequencer', () => {
  it('names only test files that exist', async () => {
    const root = join(import.meta.dirname, '..');
    const missing: string[] = [];
    for (const file of LONG_RUNNING_FILES) {
      await access(join(root, file)).catch(() => missing.push(file));
    }
    expect(missing).toEqual([]);
    expect(LONG_RUNNING_FILES.length).toBeGreaterThan(0);
  });
});

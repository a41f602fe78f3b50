import { type MockInstance, vi } from 'vitest';

/** Captures what the code under test writes to stdout (its JSON log lines) into `into`, silently. */
export function captureStdout(into: string[]): MockInstance {
  return vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    into.push(String(chunk));
    return true;
  });
}

/**
 * V8 set up for a byte pump. Every socket read and every SSH packet is a fresh ArrayBuffer outside
 * the JS heap (two to four per 64 KiB moved), and V8 (11.3 in Node 20) counts external memory
 * allocated since the last major GC against the old generation's limit. With a small live heap
 * that headroom is about 8 MB, while the buffers swing by 30–45 MB between two scavenges: once the
 * gateway has run a major GC or two (after a few thousand logins, say), V8 starts one every 30–50
 * ms under bulk load that finds nothing to free (23–32 per quick bulk phase after the idle phase,
 * `npm run bench -- --quick --only=idle,bulk`, issue 7).
 *
 * Two settings:
 * - `GATEWAY_NODE_FLAGS`: an old-generation limit never below 64 MB. V8 sizes the heap before any
 *   code runs, so these go on the node command line (the Dockerfile's CMD, `npm start`; a test
 *   keeps them the same). Measured: 4–5 major GCs in that quick phase instead of 23–32; in three
 *   full-size runs, 0.73–0.79 CPU s/GB with AES-GCM instead of 0.81–0.83, 41–45 KB per idle tunnel
 *   at 2,000 (whose live heap is above 64 MB anyway), new-connection p99 3.2–4.6 ms. The price is
 *   up to 64 MB of heap before a full collection, nothing for a task with 1 GB or more. 128 MB kept
 *   so much garbage that idle tunnels cost 97 KB each (target 60) and the p99 reached 5.4 ms;
 *   `--heap-growing-percent=100` (headroom in proportion to the live heap) pushed the p99 to 10–21
 *   ms in 3 of 7 runs; `--min/max-semi-space-size` did not change the count.
 * - `--no-concurrent-array-buffer-sweeping`, set at start-up (V8 reads it at every scavenge): young
 *   buffers are counted as freed within the scavenge, not later on a busy background thread, which
 *   otherwise kept external memory looking tens of MB high and the gateway in the state above for
 *   whole runs (1.8–2.2 instead of 0.8–1.0 CPU s/GB in about half of its starts).
 *   `--no-incremental-marking` would make every major GC one pause (40 ms at a 30 MB heap).
 */
import { setFlagsFromString } from 'node:v8';

/** Flags for the gateway's `node` command line. */
export const GATEWAY_NODE_FLAGS = ['--initial-old-space-size=64'] as const;

export function tuneGcForThroughput(): void {
  setFlagsFromString('--no-concurrent-array-buffer-sweeping');
}

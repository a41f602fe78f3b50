/**
 * V8 set up for a byte pump. Every socket read and every SSH packet is a fresh ArrayBuffer outside
 * the JS heap: under bulk load the gateway allocates 30–45 MB of them between two scavenges
 * (sampled every 5 ms with `process.memoryUsage().arrayBuffers`, issue 7).
 *
 * V8 (11.3, Node 20 and 22) counts external memory allocated since the last major GC against the
 * old generation's limit, and sets that limit from the live heap times a growing factor that it
 * derives from how fast the old generation grows. A pump promotes little, so the factor sits at its
 * floor and the headroom is about 8 MB: each sawtooth of buffers crossed it, and the gateway ran
 * one major GC every 30–100 ms (23–32 per quick bulk phase) that freed nothing of the heap, at 1.2–2.2
 * CPU s/GB instead of 0.8.
 *
 * - `--heap-growing-percent=100` fixes the factor at 2: the headroom becomes the live heap itself.
 *   After 2,000 idle tunnels had come and gone, the bulk phase ran with 0–2 major GCs and 0.77–0.80
 *   CPU s/GB (`npm run bench -- --only=idle,bulk`); idle tunnels still cost 56 KB each. A higher
 *   factor helps small heaps more (a fresh gateway still saw 8–12 major GCs per phase) but lets the
 *   heap hold that much more garbage at every size; 100 is the one measured against the memory target.
 * - `--no-concurrent-array-buffer-sweeping` frees those buffers within the scavenge rather than
 *   later on a background thread, so the external count V8 compares against the limit drops right
 *   away instead of lagging on busy cores.
 *
 * `--no-incremental-marking` also ended the repeated major GCs, but makes every one a single pause
 * (40 ms at a 30 MB heap): not worth it for a gateway whose tunnels share a loop. V8 reads both
 * flags when it needs them, so setting them at start-up takes effect.
 */
import { setFlagsFromString } from 'node:v8';

export function tuneGcForThroughput(): void {
  setFlagsFromString('--heap-growing-percent=100');
  setFlagsFromString('--no-concurrent-array-buffer-sweeping');
}

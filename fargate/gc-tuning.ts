/**
 * V8 set up for a byte pump. Every socket read and every SSH packet is a fresh ArrayBuffer outside
 * the JS heap (two to four per 64 KiB moved). V8 frees the young ones after each scavenge on a
 * background thread and only then counts them as freed; on a machine whose cores are busy that
 * count lags, external memory looks tens of MB above its low mark, and V8 keeps starting major GCs
 * (every 30–50 ms) that find nothing to free. In about half of the gateway's starts it stayed in that
 * state under bulk load and spent twice the CPU per byte (1.8–2.2 instead of 0.8–1.0 CPU s/GB,
 * `npm run bench -- --quick --only=bulk`, issue 7). Sweeping those buffers within the scavenge keeps
 * the count true: of 13 starts measured with it, none stayed in that state for a whole run (four
 * spent 1.2–1.8 CPU s/GB for a while). V8 reads this flag at every scavenge, so setting it at
 * start-up takes effect. `--no-incremental-marking` ended the state in 7 of 7 starts but makes every
 * major GC one pause (40 ms at a 30 MB heap): not worth it for a gateway whose tunnels share a loop.
 *
 * Why the major GCs start at all: V8 11.3 counts external memory allocated since the last major GC
 * against the old generation's limit, whose headroom for a pump is about 8 MB, while the buffers
 * swing by 30–45 MB between two scavenges. `--heap-growing-percent=100` widens that headroom to the
 * live heap and ended the repeated major GCs after a large idle phase (0.77–0.80 CPU s/GB), but the
 * larger heap's collections later cost new connections a p99 of 10–21 ms in 3 of 7 bench runs (target
 * 5 ms), so it is not set.
 */
import { setFlagsFromString } from 'node:v8';

export function tuneGcForThroughput(): void {
  setFlagsFromString('--no-concurrent-array-buffer-sweeping');
}

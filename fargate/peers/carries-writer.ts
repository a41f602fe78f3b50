/**
 * Writes the shards of the reverse tunnels this gateway carries (shared/worker-carries.ts) that
 * changed since their last write, and says which revisions the heartbeat may advertise: a shard's
 * new revision only once its item is written, so a peer never reads a revision that is not there.
 * Idle tunnels cost no write; a shard is rewritten only well before its item would expire.
 */
import type { WorkerCarries } from '../../shared/gateway-items';
import type { Logger } from '../../shared/logger';
import { CARRIES_SHARDS, type CarriedShards } from '../../shared/worker-carries';

/** A shard unchanged this long is written again, so its item never expires while it is advertised. */
const REFRESH_FRACTION = 0.25;

export interface CarriesWriterDeps {
  workerId: string;
  putCarries(carries: WorkerCarries, ttlSeconds: number): Promise<void>;
  ttlSeconds: number;
  logger: Logger;
  now?: () => Date;
}

export class CarriesWriter {
  /** Per shard: the revision written (what the heartbeat advertises) and when. */
  private readonly written: { rev: string; at: number }[] = Array.from({ length: CARRIES_SHARDS }, () => ({
    rev: '',
    at: 0,
  }));

  constructor(private readonly deps: CarriesWriterDeps) {}

  /** Writes the changed shards (at once); the revisions to advertise, each as far as its write went. */
  async write(carried: Pick<CarriedShards, 'shard'>): Promise<string[]> {
    const now = (this.deps.now ?? (() => new Date()))();
    const refreshMs = this.deps.ttlSeconds * 1000 * REFRESH_FRACTION;
    await Promise.all(
      this.written.map(async (last, shard) => {
        const { holds, rev } = carried.shard(shard);
        const isFresh = now.getTime() - last.at < refreshMs;
        // An emptied shard needs no item: its revision '' tells the peers there is nothing to read.
        if (rev === last.rev && (rev === '' || isFresh)) return;
        if (rev === '') {
          this.written[shard] = { rev, at: now.getTime() };
          return;
        }
        try {
          const item = { workerId: this.deps.workerId, shard, rev, holds, writtenAt: now.toISOString() };
          await this.deps.putCarries(item, this.deps.ttlSeconds);
          this.written[shard] = { rev, at: now.getTime() };
        } catch (err) {
          // The peers keep the previous revision (and relay by it) until a later beat writes this one.
          this.deps.logger.warn('carried tunnels not written', { shard, tunnels: holds.length, err });
        }
      }),
    );
    return this.written.map((w) => w.rev);
  }
}

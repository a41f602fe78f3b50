/**
 * The crypto-load chaos scenario, smaller (issue 12, CPU isolation): `npm start` as its own process,
 * a reverse tunnel carrying bytes from a real OpenSSH customer, and bursts of creates with 64-round
 * passphrase keys and RSA-4096 keys. Asserted: the event loop is not blocked by them (the kernel
 * never saw its thread run 100 ms without a break, the acceptance bound; no /healthz answer, new
 * connection or stream chunk held up for a key derivation's length), every create answered 201 or
 * 503 (never a hang or a 500), and the key work ran on another thread of the stack. The tight
 * wall-clock figures (/healthz <= 100 ms, new-connection p99 <= 20 ms) are the scenario's targets,
 * reported by `npm run chaos`: on a shared two-core machine they measure the neighbours too.
 */
import { describe, expect, inject, it } from 'vitest';
import { runCryptoLoad } from '../../../bench/chaos/crypto-load';
import type { ChaosFigure as Figure } from '../../../bench/chaos/figures';
import { MAX_BCRYPT_ROUNDS } from '../../../shared/keys';

const PASSPHRASE_CREATES = 2;
const RSA_CREATES = 2;
const LOOP_BOUND_MS = 100;
/** Below one 64-round derivation (2 s or more here), above this shared machine's own stalls. */
const CLIENT_BOUND_MS = 1_000;

describe('crypto-load chaos scenario', () => {
  it(`${PASSPHRASE_CREATES} creates with ${MAX_BCRYPT_ROUNDS}-round keys, then ${RSA_CREATES} with RSA-4096 keys, at once, do not block the event loop`, async () => {
    const { figures } = await runCryptoLoad({
      passphraseCreates: PASSPHRASE_CREATES,
      rsaCreates: RSA_CREATES,
      compareInline: false,
      isolateFromLoad: false,
      dynamoEndpoint: inject('dynamoEndpoint'),
      log: () => {},
    });
    for (const f of figures) {
      console.info(`figure: ${f.name} ${f.value} ${f.unit}${f.target ? ` (target ${f.target})` : ''}`);
    }
    const byName = new Map(figures.map((f) => [f.name, f]));
    const value = (name: string): number => {
      const figure: Figure | undefined = byName.get(name);
      if (!figure) throw new Error(`no figure ${name} in ${[...byName.keys()].join(', ')}`);
      return figure.value;
    };

    for (const [burst, count] of [
      ['passphrase', PASSPHRASE_CREATES],
      ['rsa', RSA_CREATES],
    ] as const) {
      const at = (name: string) => value(`crypto-load.pool.${burst}.${name}`);
      // 503 with Retry-After is a right answer when the pool is behind (a busy machine); a hang,
      // a 500 or a 422 is not (the scenario throws on those).
      expect(at('creates_201') + at('creates_503'), `${burst}: every create answered`).toBe(count);
      expect(at('creates_201'), `${burst}: creates succeed`).toBeGreaterThanOrEqual(1);
      // The acceptance bound, from the kernel's view of the stack's event-loop thread: it never
      // ran 100 ms without a break (inline, each derivation holds it for seconds).
      expect(at('event_loop_longest_busy'), `${burst}: event loop held`).toBeLessThanOrEqual(LOOP_BOUND_MS);
      // As clients see it, generously: a shared two-core machine stalls every process now and
      // then (the baseline shows by how much), but never for a derivation's length (seconds).
      expect(at('healthz_max'), `${burst}: /healthz max`).toBeLessThan(CLIENT_BOUND_MS);
      expect(at('healthz_samples')).toBeGreaterThan(10);
      expect(at('new_connection_max'), `${burst}: slowest new connection`).toBeLessThan(CLIENT_BOUND_MS);
      expect(at('new_connection_samples')).toBeGreaterThan(10);
      expect(at('stream_rtt_max'), `${burst}: bytes kept flowing`).toBeLessThan(CLIENT_BOUND_MS);
    }

    // The derivations' CPU ran in the stack's key crypto workers, not on its event loop. The
    // event loop's own work (probes, stream, creates) grows with the burst's length, so its CPU is
    // compared with the baseline's rate over the same time: inline, the derivations would add all
    // of `work` on top of it.
    const kdfSeconds = value(`crypto-load.kdf_${MAX_BCRYPT_ROUNDS}_rounds_one_key`) / 1000;
    const work = value('crypto-load.pool.passphrase.creates_201') * kdfSeconds;
    const baselineRate =
      value('crypto-load.pool.baseline.main_thread_cpu') / value('crypto-load.pool.baseline.wall_time');
    const loopShare = baselineRate * value('crypto-load.pool.passphrase.wall_time');
    expect(value('crypto-load.pool.passphrase.off_loop_cpu')).toBeGreaterThan(0.5 * work);
    expect(value('crypto-load.pool.passphrase.main_thread_cpu')).toBeLessThan(loopShare + 0.5 * work);
  }, 420_000);
});

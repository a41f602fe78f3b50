/**
 * Static stability (issue 12, acceptance 5): `npm start`'s own DynamoDB Local killed by pid while
 * a reverse tunnel (autossh) and a standard tunnel (a real OpenSSH bastion) carry traffic, run by
 * the same scenario as `npm run chaos` (bench/chaos/storage-outage.ts) at full size: two minutes
 * of traffic from the kill.
 */
import { describe, expect, it } from 'vitest';
import { FULL_SIZE, runStorageOutage } from '../../bench/chaos/storage-outage';

describe('DynamoDB Local killed under npm start while tunnels carry traffic', () => {
  it('keeps both tunnels carrying traffic, answers 503, heals by itself, and loses nothing', async () => {
    const seen = await runStorageOutage(FULL_SIZE, () => {});

    // Callers are told the truth: 503 with Retry-After, readiness names storage, liveness holds.
    expect(seen.outageAnswer.status).toBe(503);
    expect(seen.outageAnswer.json.error).toMatchObject({
      code: 'unavailable',
      details: { dependency: 'table' },
    });
    expect(Number(seen.outageAnswer.headers.get('Retry-After'))).toBeGreaterThan(0);
    expect(seen.readyzDuringOutage).toEqual({ status: 503, storageOk: false });
    expect(seen.healthzDuringOutage).toBe(200);

    // Back by itself, and said so.
    expect(seen.backMs).toBeLessThanOrEqual(FULL_SIZE.backWithinMs);
    expect(seen.supervisorLog).toContain('dynamodb local exited; restarting it');
    expect(seen.supervisorLog).toContain('dynamodb local restarted');

    // The bytes never noticed.
    expect(seen.probes.failed).toBe(0);
    expect(seen.probes.ok).toBeGreaterThan(200);
    for (const held of seen.held) {
      expect(held).toMatchObject({ failed: 0, open: true });
      expect(held.ok).toBeGreaterThan(FULL_SIZE.carryMs / 500 / 2);
    }

    // Consistent afterwards: both still there and up, no false outage recorded, nobody paged.
    expect(seen.tunnelsAfter.map((t) => [t.id, t.status.state])).toEqual(
      seen.tunnelsBefore.map((t) => [t.id, 'up']),
    );
    expect(seen.eventsAfter).toEqual(seen.eventsBefore);
    expect(seen.alertsReceived).toBe(0);
    console.info(
      `figure: DynamoDB Local killed: back (readyz 200) ${seen.backMs} ms later; over ${FULL_SIZE.carryMs / 1000} s ` +
        `${seen.probes.ok} new connections through the two tunnels, ${seen.probes.failed} failed; held connections ` +
        `${seen.held.map((s) => `${s.ok} echoes (slowest ${s.slowestEchoMs} ms)`).join(' and ')}, 0 failed; ` +
        '0 alerts, no event recorded',
    );
  }, 240_000);
});

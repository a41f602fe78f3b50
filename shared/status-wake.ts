/**
 * When a tunnel's status must be evaluated again although nothing it reads has been written: the
 * status machine's timers (the grace before a `tunnel.down`, the end of a maintenance window, the
 * settle before a `tunnel.up`, the reconnect window of a reverse session lost with its worker) and
 * the outbox's next delivery attempt or lapsed claim. Everything else that changes a status is a
 * write (a worker's STATE, the tunnel's META) or a worker going silent, which the sweeper learns
 * from the workers' heartbeats. So the periodic sweep reads only the tunnels due by this time (a
 * sparse index), never the whole fleet.
 */

import { reconnectWindowMs, type StatusSettings, type StatusTunnel } from './status';
import type { OutboxAlert, StatusRecord } from './status-items';

export interface WakeInput {
  tunnel: Pick<StatusTunnel, 'type' | 'alerts'>;
  /** The record as persisted (absent: none yet, nothing to wait for). */
  record: StatusRecord | undefined;
  outbox: readonly OutboxAlert[];
  settings: StatusSettings;
}

/** Epoch ms at which the status may change by time alone; undefined when it cannot. */
export function statusWakeAt({ tunnel, record, outbox, settings }: WakeInput): number | undefined {
  const times: number[] = [];
  if (record?.state === 'down') {
    const incident = record.incident;
    if (incident && !incident.alerted) {
      const pastGrace = Date.parse(incident.since) + settings.downGraceMs;
      const mutedUntil = tunnel.alerts?.mutedUntil ? Date.parse(tunnel.alerts.mutedUntil) : 0;
      times.push(Math.max(pastGrace, mutedUntil));
    }
    if (record.error?.code === 'worker_lost' && tunnel.type === 'reverse') {
      times.push(Date.parse(record.since) + reconnectWindowMs(settings));
    }
  } else if (record?.state === 'up' && record.incident?.alerted) {
    times.push(Date.parse(record.since) + (settings.recoverySettleMs ?? 0));
  }
  for (const alert of outbox) times.push(alertWakeAt(alert));
  const valid = times.filter((t) => Number.isFinite(t));
  return valid.length > 0 ? Math.min(...valid) : undefined;
}

/** A claimed alert is due when its claim lapses; otherwise at its earliest pending sink's attempt. */
function alertWakeAt(alert: OutboxAlert): number {
  if (alert.claim) return alert.claim.until;
  const pending = Object.values(alert.sinks).filter((s) => s.state === 'pending');
  // Every sink done: the entry leaves at the next settle, which whoever holds it does now.
  if (pending.length === 0) return alert.deadline;
  return Math.min(...pending.map((s) => s.nextAttemptAt ?? 0));
}

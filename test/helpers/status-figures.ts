import type { Status } from '../../shared/schemas';

/**
 * A status without `uptime` and `traffic`: figures that move with the clock and with traffic, and
 * that alerts do not carry. For comparing a status read at one moment with one read (or alerted)
 * at another.
 */
export function withoutFigures(status: Status): Status {
  const { uptime: _uptime, traffic: _traffic, ...rest } = status;
  return rest;
}

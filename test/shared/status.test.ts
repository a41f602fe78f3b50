import { describe, expect, it } from 'vitest';
import { type TunnelStateItem, TunnelStateItemSchema } from '../../shared/gateway-items';
import { ConnectSchema, StatusSchema } from '../../shared/schemas';
import { type StatusView, statusOnRead } from '../../shared/status';

const CREATED = '2026-01-01T00:00:00.000Z';
const UPDATED = '2026-01-02T00:00:00.000Z';
const SINCE = '2026-01-03T00:00:00.000Z';
const SEEN = '2026-01-03T00:05:00.000Z';
const BIND = '10.0.5.7';
const PORT = 20001;

const tunnel = (enabled: boolean) => ({ enabled, createdAt: CREATED, updatedAt: UPDATED, port: PORT });
const lost = {
  code: 'customer_not_connected' as const,
  message: 'no customer session holds the forward for port 20001',
  hint: 'start the ssh command on the customer host',
};

describe('statusOnRead', () => {
  it.each<[string, boolean, TunnelStateItem | undefined, StatusView]>([
    [
      'disabled, no state item',
      false,
      undefined,
      { status: { state: 'disabled', since: UPDATED }, connect: null },
    ],
    [
      'disabled beats an up state item',
      false,
      { state: 'up', since: SINCE, lastSeenAt: SEEN, owner: 'worker-1' },
      { status: { state: 'disabled', since: UPDATED }, connect: null },
    ],
    [
      'disabled beats a down state item with an error',
      false,
      { state: 'down', since: SINCE, error: lost },
      { status: { state: 'disabled', since: UPDATED }, connect: null },
    ],
    [
      'enabled, no state item: pending since creation',
      true,
      undefined,
      { status: { state: 'pending', since: CREATED }, connect: null },
    ],
    [
      'up: reachable at the bind host and the tunnel port',
      true,
      { state: 'up', since: SINCE, lastSeenAt: SEEN, owner: 'worker-1', connId: 'c1' },
      { status: { state: 'up', since: SINCE, lastSeenAt: SEEN }, connect: { host: BIND, port: PORT } },
    ],
    [
      'up without a heartbeat yet',
      true,
      { state: 'up', since: SINCE },
      { status: { state: 'up', since: SINCE }, connect: { host: BIND, port: PORT } },
    ],
    [
      'down with an error: passed through, no connect',
      true,
      { state: 'down', since: SINCE, lastSeenAt: SEEN, error: lost },
      { status: { state: 'down', since: SINCE, lastSeenAt: SEEN, error: lost }, connect: null },
    ],
    [
      'down without an error',
      true,
      { state: 'down', since: SINCE },
      { status: { state: 'down', since: SINCE }, connect: null },
    ],
  ])('%s', (_, enabled, state, expected) => {
    const view = statusOnRead(tunnel(enabled), state, BIND);
    // Strict: no worker-internal field (owner, connId) and no undefined key leaks into the API.
    expect(view).toStrictEqual(expected);
    expect(StatusSchema.strict().parse(view.status)).toStrictEqual(expected.status);
    expect(ConnectSchema.parse(view.connect)).toStrictEqual(expected.connect);
  });

  it('returns a status the caller may change without touching the state item', () => {
    const state: TunnelStateItem = { state: 'down', since: SINCE, error: { ...lost } };
    const view = statusOnRead(tunnel(true), state, BIND);
    view.status.since = 'changed';
    expect(state.since).toBe(SINCE);
  });
});

describe('TunnelStateItemSchema', () => {
  it.each([
    ['a state the worker never writes', { state: 'pending', since: SINCE }],
    ['an unknown error code', { state: 'down', since: SINCE, error: { ...lost, code: 'gremlins' } }],
    ['an error without a hint', { state: 'down', since: SINCE, error: { code: lost.code, message: 'x' } }],
    ['no since', { state: 'up' }],
  ])('rejects %s', (_, item) => {
    expect(TunnelStateItemSchema.safeParse(item).success).toBe(false);
  });

  it('accepts what a worker writes', () => {
    const item = { state: 'down', since: SINCE, lastSeenAt: SEEN, owner: 'w1', connId: 'c1', error: lost };
    expect(TunnelStateItemSchema.parse(item)).toEqual(item);
  });
});

/**
 * The drain of a bastion session a rotation replaced: it ends exactly once, at whichever comes
 * first of its last connection ending, its limit, its session ending or the runner's word, and
 * closes the session then (and only then). Time is faked; the session is a stand-in for ours.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BastionConnection } from '../../../fargate/standard/bastion-connection';
import { SessionDrain } from '../../../fargate/standard/session-drain';
import { createLogger } from '../../../shared/logger';
import type { StatusError } from '../../../shared/schemas';

const MAX_MS = 60_000;

function world(connections: number) {
  let endSession: (why: StatusError) => void = () => {};
  let drain: () => void = () => {};
  let closes = 0;
  const session: BastionConnection = {
    authenticatedWith: 'SHA256:old',
    hostKeyFingerprint: 'SHA256:host',
    target: 'bastion:22',
    forward: () => Promise.reject(new Error('not in these tests')),
    closed: new Promise((resolve) => {
      endSession = resolve;
    }),
    close: () => {
      closes++;
    },
  };
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('debug', (line) => lines.push(JSON.parse(line)));
  const state = { connections };
  const subject = new SessionDrain(session, {
    drained: new Promise<void>((resolve) => {
      drain = resolve;
    }),
    connections: () => state.connections,
    maxMs: MAX_MS,
    replacedBy: 'SHA256:new',
    logger,
  });
  return {
    subject,
    state,
    lines,
    closes: () => closes,
    drain,
    endSession: () => endSession({ code: 'connection_lost', message: 'gone', hint: '' }),
    closedLine: () => lines.find((l) => l.msg === 'previous bastion session closed'),
  };
}

describe('SessionDrain', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('says what drains, for how long at most, and carries on while connections are open', async () => {
    const w = world(2);
    expect(w.lines[0]).toMatchObject({
      msg: 'previous bastion session draining',
      key: 'SHA256:old',
      newKey: 'SHA256:new',
      connections: 2,
      maxMs: MAX_MS,
    });
    await vi.advanceTimersByTimeAsync(MAX_MS - 1);
    expect(w.closes()).toBe(0);
    expect(w.closedLine()).toBeUndefined();
  });

  it('closes the session as soon as its last connection ends', async () => {
    const w = world(1);
    await vi.advanceTimersByTimeAsync(5_000);
    w.state.connections = 0;
    w.drain();
    expect(await w.subject.done).toBe('drained');
    expect(w.closes()).toBe(1);
    expect(w.closedLine()).toMatchObject({
      level: 'info',
      key: 'SHA256:old',
      reason: 'drained',
      connectionsCut: 0,
    });
  });

  it('closes at the limit, cutting what is still open, and says how many', async () => {
    const w = world(3);
    await vi.advanceTimersByTimeAsync(MAX_MS);
    expect(await w.subject.done).toBe('drain limit reached');
    expect(w.closes()).toBe(1);
    expect(w.closedLine()).toMatchObject({ level: 'warn', reason: 'drain limit reached', connectionsCut: 3 });
  });

  it('ends when the bastion ends the session', async () => {
    const w = world(1);
    w.endSession();
    expect(await w.subject.done).toBe('session ended');
  });

  it('ends once, at the first of several causes, when the runner ends it', async () => {
    const w = world(1);
    w.subject.close('replaced by a newer rotation');
    w.drain();
    w.endSession();
    await vi.advanceTimersByTimeAsync(MAX_MS * 2);
    expect(await w.subject.done).toBe('replaced by a newer rotation');
    expect(w.closes()).toBe(1);
    expect(w.lines.filter((l) => l.msg === 'previous bastion session closed')).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});

/**
 * rejectAsProhibited against stand-ins for ssh2's connection: what reaches the wire, that ssh2 is
 * left as it was, and the fallback. What OpenSSH prints is in reverse-refusals.test.ts.
 */
import type { Connection } from 'ssh2';
import { describe, expect, it } from 'vitest';
import { rejectAsProhibited } from '../../fargate/reverse/channel-refusal';

type Sent = [recipient: number, reason: number, description: string];

class FakeProtocol {
  readonly sent: Sent[] = [];
  channelOpenFail(recipient: number, reason: number, description: string): void {
    this.sent.push([recipient, reason, description]);
  }
}

const connectionWith = (protocol: unknown) => ({ _protocol: protocol }) as unknown as Connection;

describe('rejectAsProhibited', () => {
  it('sends "administratively prohibited" with the text instead of what reject() chose', () => {
    const protocol = new FakeProtocol();
    const conn = connectionWith(protocol);
    rejectAsProhibited(conn, () => protocol.channelOpenFail(7, 2, ''), 'no -L here');
    expect(protocol.sent).toEqual([[7, 1, 'no -L here']]);
  });

  it("leaves ssh2's own method in place afterwards, even when reject() throws", () => {
    const protocol = new FakeProtocol();
    const conn = connectionWith(protocol);
    expect(() =>
      rejectAsProhibited(
        conn,
        () => {
          throw new Error('boom');
        },
        'x',
      ),
    ).toThrow('boom');
    expect(Object.hasOwn(protocol, 'channelOpenFail')).toBe(false);
    protocol.channelOpenFail(3, 2, '');
    expect(protocol.sent).toEqual([[3, 2, '']]);
  });

  it('falls back to the plain reject() when the protocol is not where it was', () => {
    let rejected = 0;
    rejectAsProhibited(connectionWith(undefined), () => rejected++, 'x');
    rejectAsProhibited(connectionWith({}), () => rejected++, 'x');
    expect(rejected).toBe(2);
  });
});

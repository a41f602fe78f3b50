/**
 * Refusing a channel open the way RFC 4254 §5.1 means it: reason 1, "administratively prohibited",
 * with a description OpenSSH prints ("channel 2: open failed: administratively prohibited: …").
 * Once a listener is attached, ssh2's reject() always answers reason 2, "connect failed", with no
 * text (ssh2 PR #1223, open), which tells a customer trying `-L` that the target is down rather
 * than that the endpoint forbids it.
 */
import type { Connection } from 'ssh2';

const ADMINISTRATIVELY_PROHIBITED = 1;

type ChannelOpenFail = (recipient: number, reason: number, description: string) => void;

/**
 * Calls ssh2's `reject` (which frees the channel slot ssh2 reserved, then sends the failure) with
 * the failure's reason and text replaced. Both happen synchronously inside reject(), so the
 * replacement covers exactly this one reply. Should ssh2's internals move, it falls back to the
 * plain reject(); test/fargate/reverse-refusals.test.ts reads OpenSSH's message and would say so.
 */
export function rejectAsProhibited(conn: Connection, reject: () => void, description: string): void {
  const protocol = (conn as unknown as { _protocol?: { channelOpenFail?: ChannelOpenFail } })._protocol;
  const send = protocol?.channelOpenFail;
  if (protocol === undefined || typeof send !== 'function') {
    reject();
    return;
  }
  const hadOwn = Object.hasOwn(protocol, 'channelOpenFail');
  protocol.channelOpenFail = (recipient) =>
    send.call(protocol, recipient, ADMINISTRATIVELY_PROHIBITED, description);
  try {
    reject();
  } finally {
    if (hadOwn) protocol.channelOpenFail = send;
    else delete protocol.channelOpenFail;
  }
}

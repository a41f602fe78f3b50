/**
 * Tells the other live gateways to look at the standard tunnels' leases now (`POST /pool/poll` on
 * their control endpoints): a tunnel this gateway offers (stopping, rebalancing) is then taken
 * within a round trip instead of at the next poll, while this gateway still serves it.
 */
import type { PeerRef } from './peer-directory';

export const POOL_POLL_PATH = '/pool/poll';

/** The peers that took the nudge (answered 202); one that is slow or gone costs at most `timeoutMs`. */
export async function nudgePeers(
  peers: readonly PeerRef[],
  token: string,
  timeoutMs: number,
): Promise<number> {
  const answers = await Promise.allSettled(
    peers.map((peer) =>
      fetch(new URL(POOL_POLL_PATH, peer.controlUrl), {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(timeoutMs),
      }),
    ),
  );
  let taken = 0;
  for (const answer of answers) {
    if (answer.status !== 'fulfilled') continue;
    await answer.value.body?.cancel();
    if (answer.value.status === 202) taken++;
  }
  return taken;
}

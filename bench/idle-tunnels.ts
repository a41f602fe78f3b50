/**
 * Idle reverse tunnels (targets 3 and 7): many customers each holding one reverse forward and
 * sending nothing. Our cost is the growth of the stack process's RSS per tunnel; sshd's is the
 * growth of the summed PSS of its processes per tunnel. At our full load, a new connection through
 * a tunnel must still meet target 2, and DynamoDB writes are counted at 1 and at many tunnels.
 */
import type { Bench, Measured } from './context';
import { countSteadyWrites, dynamoFigures, type WriteCount } from './dynamo-writes';
import { latencyFigures, sampleNewConnections } from './new-connection';
import type { Figure } from './report';
import { rssBytes, treePssBytes } from './support/procfs';
import { median } from './support/stats';
import type { ForwardSession } from './support/tunnel-clients-protocol';

const WARM_UP_LOGINS = 50;

const CUSTOMERS_NOTE =
  'customers are ssh2 1.17 Clients in one separate process, each logging in with its key and holding one ' +
  'tcpip-forward as `ssh -N -R` does (the same clients for both servers)';

/** Runs `measure`, then disconnects the ssh2 customers of `group` however it ended. */
async function withGroup<T>(bench: Bench, group: string, measure: () => Promise<T>): Promise<T> {
  try {
    return await measure();
  } finally {
    await bench.clients.close(group, 30_000);
  }
}

/** The median of `count` readings, one per second or so (three quick ones by default). */
async function sampled(read: () => Promise<number>, count = 3): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < count; i++) {
    values.push(await read());
    await new Promise((resolve) => setTimeout(resolve, count > 3 ? 1_000 : 300));
  }
  return median(values);
}

/** Our gateway: baseline, the DynamoDB checkpoint, full load, RSS, then latency at that load. */
async function idleOurs(bench: Bench): Promise<{
  opened: number;
  checkpoint: number;
  rssBefore: number;
  rssAfter: number;
  /** RSS at moments of the run, for the per-tunnel slope and the record. */
  rssTimeline: { at: string; tunnels: number; bytes: number }[];
  atOne: WriteCount;
  atMany: WriteCount | undefined;
  latencyAtLoad: number[];
  openMs: number;
  errors: string[];
}> {
  const { settings, stack, clients, tunnels } = bench;
  const sessions: ForwardSession[] = tunnels.pool
    .slice(0, settings.idleOurs)
    .map(({ id, port }) => ({ username: id, bindAddr: 'localhost', bindPort: port }));
  const checkpoint = Math.min(settings.dynamoTunnels, sessions.length);
  const stockId = tunnels.stock.id;

  bench.log(`DynamoDB writes at 1 idle tunnel (${settings.dynamoWindowMs / 1000} s window)`);
  // Long enough for a sweep to start after the tunnels came up, and to finish.
  const settleBudgetMs = 2 * settings.sweepIntervalMs + 20_000;
  const atOne = await countSteadyWrites(bench, [stockId], settleBudgetMs);

  const open = (list: ForwardSession[]) =>
    clients.open('idle-ours', bench.targets.ours, list, {
      concurrency: 16,
      timeoutMs: 30_000,
      deadlineMs: 240_000,
    });
  const rssTimeline: { at: string; tunnels: number; bytes: number }[] = [];
  const rss = async (at: string, tunnels: number, samples = 3) => {
    const bytes = await sampled(() => rssBytes(stack.pid), samples);
    rssTimeline.push({ at, tunnels, bytes });
    return bytes;
  };
  // Warm-up: the login path compiled and its pools allocated before the baseline, so the growth
  // measured is the tunnels', not one-time costs.
  await open(sessions.slice(0, WARM_UP_LOGINS));
  await clients.close('idle-ours', 30_000);
  const rssBefore = await rss('baseline', 1);
  return withGroup(bench, 'idle-ours', async () => {
    bench.log(`opening ${checkpoint} idle reverse tunnels on our gateway`);
    const first = await open(sessions.slice(0, checkpoint));
    bench.log(`  ${first.opened} open in ${Math.round(first.ms)} ms (${first.failed} failed)`);
    await rss('checkpoint, just opened', 1 + first.opened);
    const openIds = [stockId, ...sessions.slice(0, checkpoint).map((s) => s.username)];
    bench.log(`DynamoDB writes at ${checkpoint} idle tunnels`);
    const atMany = first.failed === 0 ? await countSteadyWrites(bench, openIds, settleBudgetMs) : undefined;
    await rss('checkpoint, after the write window', 1 + first.opened);

    let second = { opened: 0, failed: 0, errors: [] as string[], ms: 0 };
    if (sessions.length > checkpoint) {
      bench.log(`opening ${sessions.length - checkpoint} more`);
      second = await open(sessions.slice(checkpoint));
      bench.log(`  ${second.opened} open in ${Math.round(second.ms)} ms (${second.failed} failed)`);
    }
    const opened = first.opened + second.opened;
    await rss('all open', 1 + opened);
    // Idle, the tunnels still exchange keepalives and the heap saws up and down with collections:
    // the median over a while, not one sample.
    const rssAfter = await rss('all open, settled', 1 + opened, settings.quick ? 5 : 15);
    bench.log(`new connections through a tunnel with ${opened} idle tunnels open`);
    const latency = await sampleNewConnections(
      { ours: bench.stockSsh.ours.port },
      settings.connections,
      settings.quick ? 20_000 : 60_000,
    );
    return {
      opened,
      checkpoint: first.opened,
      rssBefore,
      rssAfter,
      rssTimeline,
      atOne,
      atMany,
      latencyAtLoad: latency.ours ?? [],
      openMs: first.ms + second.ms,
      errors: [...first.errors, ...second.errors],
    };
  });
}

/** sshd: summed PSS of the listener and all its descendants, before and with the tunnels. */
async function idleOpenssh(bench: Bench): Promise<{
  opened: number;
  pssBefore: number;
  pssAfter: number;
  processesBefore: number;
  processesAfter: number;
  errors: string[];
}> {
  const { settings, sshd, clients } = bench;
  const listener = await sshd.listenerPid();
  const before = await treePssBytes(listener);
  const sessions: ForwardSession[] = Array.from({ length: settings.idleOpenssh }, () => ({
    username: sshd.user,
    bindAddr: 'localhost',
    bindPort: 0,
  }));
  return withGroup(bench, 'idle-openssh', async () => {
    bench.log(`opening ${sessions.length} idle reverse tunnels on sshd`);
    const result = await clients.open('idle-openssh', bench.targets.openssh, sessions, {
      concurrency: 8,
      timeoutMs: 30_000,
      deadlineMs: 180_000,
    });
    bench.log(`  ${result.opened} open in ${Math.round(result.ms)} ms (${result.failed} failed)`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = await treePssBytes(listener);
    return {
      opened: result.opened,
      pssBefore: before.bytes,
      pssAfter: after.bytes,
      processesBefore: before.processes,
      processesAfter: after.processes,
      errors: result.errors,
    };
  });
}

export async function measureIdleTunnels(bench: Bench): Promise<Measured> {
  const { settings } = bench;
  const ours = await idleOurs(bench);
  const openssh = await idleOpenssh(bench);
  const oursPerTunnelKb = ours.opened > 0 ? (ours.rssAfter - ours.rssBefore) / ours.opened / 1000 : null;
  const opensshPerTunnelKb =
    openssh.opened > 0 ? (openssh.pssAfter - openssh.pssBefore) / openssh.opened / 1000 : null;
  const ratio = oursPerTunnelKb !== null && opensshPerTunnelKb ? oursPerTunnelKb / opensshPerTunnelKb : null;
  // The second half's growth alone: one-time costs (code compiled, pools) are in the first half.
  const atCheckpoint = ours.rssTimeline.find((r) => r.at === 'checkpoint, after the write window');
  const marginalKb =
    atCheckpoint && ours.opened > ours.checkpoint
      ? (ours.rssAfter - atCheckpoint.bytes) / (ours.opened - ours.checkpoint) / 1000
      : null;
  const figures: Figure[] = [
    {
      id: 'idle.tunnels',
      label: 'Idle reverse tunnels held at once',
      unit: 'tunnels',
      ours: ours.opened,
      openssh: openssh.opened,
      note: `${CUSTOMERS_NOTE}; fewer on sshd, whose cost per tunnel is linear (about ${Math.round(
        (openssh.processesAfter - openssh.processesBefore) / Math.max(1, openssh.opened),
      )} processes each)`,
    },
    {
      id: 'idle.memory',
      label: 'Idle reverse tunnel: memory each',
      unit: 'KB',
      ours: oursPerTunnelKb,
      openssh: opensshPerTunnelKb,
      target: {
        text: '≤ 60 KB and ≤ 1/25 of sshd',
        met: oursPerTunnelKb !== null && ratio !== null ? oursPerTunnelKb <= 60 && ratio <= 1 / 25 : null,
      },
      note:
        (settings.quick
          ? `${ours.opened} tunnels are too few for a steady per-tunnel figure (the heap grows in steps); read the full run's; `
          : '') +
        `ours: stack process RSS growth ${((ours.rssAfter - ours.rssBefore) / 1e6).toFixed(1)} MB over ${ours.opened} tunnels ` +
        `(${(ours.rssBefore / 1e6).toFixed(0)} → ${(ours.rssAfter / 1e6).toFixed(0)} MB)` +
        (marginalKb !== null
          ? `, ${marginalKb.toFixed(1)} KB each from ${ours.checkpoint} to ${ours.opened}`
          : '') +
        `; sshd: summed Pss of its ` +
        `processes ${(openssh.pssBefore / 1e6).toFixed(1)} → ${(openssh.pssAfter / 1e6).toFixed(1)} MB over ${openssh.opened} tunnels`,
    },
    ...latencyFigures(
      'idle.connect',
      `New connection with ${ours.opened} idle tunnels open`,
      ours.latencyAtLoad,
      undefined,
    ),
    ...dynamoFigures(ours.atOne, ours.atMany),
  ];
  return {
    figures,
    details: { ours: { ...ours, latencyAtLoad: undefined, latencyAtLoadMs: ours.latencyAtLoad }, openssh },
  };
}

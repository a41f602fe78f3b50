/**
 * Idle reverse tunnels (targets 3 and 7): many customers each holding one reverse forward and
 * sending nothing. Our cost is the growth of the stack process's RSS per tunnel; sshd's is the
 * growth of the summed PSS of its processes per tunnel. At our full load, a new connection through
 * a tunnel must still meet target 2, and DynamoDB reads and writes are counted at 1 tunnel and at
 * each size of `dynamoTunnels` (dynamo-usage.ts).
 */
import type { Bench, Measured } from './context';
import { countSteadyUsage, dynamoFigures, sweepsSoFar, type UsageCount } from './dynamo-usage';
import { type FullPass, fullPassFigures, measureFullPass } from './full-pass';
import { latencyFigures, sampleNewConnections } from './new-connection';
import type { Figure } from './report';
import { afterWritesSettle } from './support/dynamo-proxy';
import { openFileCount, rssBytes, treePssBytes } from './support/procfs';
import { median } from './support/stats';
import type { ForwardSession } from './support/tunnel-clients-protocol';

const WARM_UP_LOGINS = 50;
/** Descriptors an idle reverse tunnel holds in the gateway (its SSH connection, its listener), until measured. */
const FDS_PER_TUNNEL = 2;
/** Descriptors left for everything else the stack opens meanwhile (DynamoDB and API sockets, probes). */
const FD_RESERVE = 500;
/** Writes a second the stack makes when nothing changes (heartbeats), with room to spare. */
const QUIET_WRITES_PER_SECOND = 2;
const CHURN_TIMEOUT_MS = 180_000;

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

/**
 * How long the sweeper may take to record a step's tunnels as up: a sweep to start after they came
 * up and to finish, and the transitions to be written (a sweep that reads every tunnel takes
 * longer the more there are).
 */
const settleBudgetMs = (sweepIntervalMs: number, tunnels: number) =>
  2 * sweepIntervalMs + 20_000 + 25 * tunnels;

/**
 * Our gateway: DynamoDB at 1 tunnel; then, step by step up to `idleOurs`, the step's tunnels
 * written to the table and logged into, DynamoDB counted at each size of `dynamoTunnels`; RSS,
 * then latency at full load. A step's tunnels are written just before it, so the table holds no
 * more tunnels than are up (the stock client's and the AES one's besides) when DynamoDB is counted:
 * a read that grows with the table shows as growth, not as part of the 1-tunnel figure.
 */
async function idleOurs(bench: Bench): Promise<{
  opened: number;
  /** Tunnels open at the step before the last, for the marginal memory figure. */
  checkpoint: number;
  rssBefore: number;
  rssAfter: number;
  /** RSS at moments of the run, for the per-tunnel slope and the record. */
  rssTimeline: { at: string; tunnels: number; bytes: number }[];
  dynamo: UsageCount[];
  /** The DynamoDB sizes as held: `dynamoTunnels` unless the open-files limit held fewer. */
  countedSizes: number[];
  latencyAtLoad: number[];
  /** One full status pass with every tunnel held, when the steady counts at the largest size were taken. */
  fullPass: FullPass | null;
  openMs: number;
  writeMs: number;
  deleteMs: number;
  /** How long the stack's writes for the disconnects went on after the delete. */
  churnMs: number;
  /** A login step did not answer in time: how many are open is not known. */
  incomplete: boolean;
  errors: string[];
}> {
  const { settings, stack, clients, tunnels } = bench;
  const stockId = tunnels.stock.id;
  const service = { host: '127.0.0.1', port: bench.service.port };
  // Sessions besides the stock client's, which is open from set-up on.
  const sessionsWanted = settings.idleOurs - 1;
  const steps = [...new Set([...settings.dynamoTunnels.map((n) => n - 1), sessionsWanted])]
    .filter((n) => n > 0 && n <= sessionsWanted)
    .sort((a, b) => a - b);

  bench.log(`DynamoDB at 1 idle tunnel (${settings.dynamoWindowMs / 1000} s window)`);
  const dynamo = [await countSteadyUsage(bench, [stockId], settleBudgetMs(settings.sweepIntervalMs, 1))];

  const written: { id: string; port: number }[] = [];
  let writeMs = 0;
  const write = async (upTo: number) => {
    if (written.length >= upTo) return;
    const started = performance.now();
    written.push(...(await stack.addReverseTunnels(upTo - written.length, service, bench.key.publicKey)));
    writeMs += performance.now() - started;
    bench.log(`  ${written.length} idle-phase tunnels in the table`);
  };
  const sessionsOf = (list: { id: string; port: number }[]): ForwardSession[] =>
    list.map(({ id, port }) => ({ username: id, bindAddr: 'localhost', bindPort: port }));
  const open = (list: ForwardSession[]) =>
    clients.open('idle-ours', bench.targets.ours, list, {
      concurrency: 16,
      timeoutMs: 30_000,
      deadlineMs: 240_000 + 60 * list.length,
    });
  const rssTimeline: { at: string; tunnels: number; bytes: number }[] = [];
  const rss = async (at: string, tunnels: number, samples = 3) => {
    const bytes = await sampled(() => rssBytes(stack.pid), samples);
    rssTimeline.push({ at, tunnels, bytes });
    return bytes;
  };
  let measured: Omit<Awaited<ReturnType<typeof idleOurs>>, 'deleteMs' | 'churnMs'>;
  let deleteStarted = 0;
  let deleteError: string | undefined;
  try {
    // Warm-up: the login path compiled and its pools allocated before the baseline, so the growth
    // measured is the tunnels', not one-time costs.
    await write(Math.min(WARM_UP_LOGINS, steps[0] ?? 0));
    await open(sessionsOf(written.slice(0, WARM_UP_LOGINS)));
    await clients.close('idle-ours', 30_000);
    const rssBefore = await rss('baseline', 1);
    measured = await withGroup(bench, 'idle-ours', async () => {
      let opened = 0;
      let checkpoint = 0;
      const countedSizes = [1];
      let openMs = 0;
      const errors: string[] = [];
      let fdsPerTunnel = FDS_PER_TUNNEL;
      // A step whose logins did not all answer leaves an unknown number open: no memory figure.
      let incomplete = false;
      const fdsAtStart = await openFileCount(stack.pid);
      for (const step of steps) {
        // As many as the open-files limit leaves room for, in whole hundreds with the stock one.
        const room = Math.floor(
          (stack.openFiles - (await openFileCount(stack.pid)) - FD_RESERVE) / fdsPerTunnel,
        );
        const target = step <= opened + room ? step : Math.floor((opened + room + 1) / 100) * 100 - 1;
        if (target < step) {
          const why =
            `held ${target + 1} idle tunnels, not ${step + 1}: the gateway's open-files limit of ` +
            `${stack.openFiles} (hard RLIMIT_NOFILE; raising it needs CAP_SYS_RESOURCE) leaves room for no more ` +
            `at ${fdsPerTunnel.toFixed(2)} descriptors a tunnel`;
          bench.log(`  ${why}`);
          errors.push(why);
        }
        if (target <= opened) break;
        await write(target);
        bench.log(
          `opening ${target - opened} more idle reverse tunnels on our gateway (${target + 1} with the stock one)`,
        );
        const sweepsAtStart = (await sweepsSoFar(bench))?.count;
        const stepStarted = Date.now();
        const result = await open(sessionsOf(written.slice(opened, target))).catch((err: unknown) => {
          // No answer in time: the logins may go on; what is open is measured, this step is not.
          const message = err instanceof Error ? err.message : String(err);
          bench.log(`  opening failed: ${message}`);
          errors.push(`opening ${target - opened} tunnels failed: ${message}`);
          return undefined;
        });
        if (!result) {
          incomplete = true;
          break;
        }
        bench.log(`  ${result.opened} open in ${Math.round(result.ms)} ms (${result.failed} failed)`);
        openMs += result.ms;
        errors.push(...result.errors.slice(0, 5));
        if (step !== steps[steps.length - 1]) checkpoint = opened + result.opened;
        opened += result.opened;
        if (opened > 0) fdsPerTunnel = Math.max(1, ((await openFileCount(stack.pid)) - fdsAtStart) / opened);
        await rss(`${target + 1}, just opened`, 1 + opened);
        if (!settings.dynamoTunnels.includes(step + 1)) continue;
        countedSizes.push(target + 1);
        if (result.failed > 0) {
          errors.push(`DynamoDB not counted at ${target + 1}: ${result.failed} logins failed`);
          continue;
        }
        bench.log(`DynamoDB at ${target + 1} idle tunnels`);
        const ids = [stockId, ...written.slice(0, target).map((t) => t.id)];
        try {
          dynamo.push(
            await countSteadyUsage(bench, ids, settleBudgetMs(settings.sweepIntervalMs, ids.length), {
              count: result.opened,
              from: stepStarted,
              sweepsAtFrom: sweepsAtStart,
            }),
          );
        } catch (err) {
          // The counts so far, memory and latency are still worth having: say why this one is not.
          const message = err instanceof Error ? err.message : String(err);
          bench.log(`  DynamoDB not counted at ${target + 1}: ${message}`);
          errors.push(`DynamoDB not counted at ${target + 1}: ${message.split('\n')[0]}`);
        }
        await rss(`${target + 1}, after the DynamoDB window`, 1 + opened);
        if (target < step) break;
      }
      // Idle, the tunnels still exchange keepalives and the heap saws up and down with collections:
      // the median over a while, not one sample.
      const rssAfter = await rss('all open, settled', 1 + opened, settings.quick ? 5 : 15);
      bench.log(`new connections through a tunnel with ${opened + 1} idle tunnels open`);
      const latency = await sampleNewConnections(
        { ours: bench.stockSsh.ours.port },
        settings.connections,
        settings.quick ? 20_000 : 60_000,
      );
      // Last, so its load on DynamoDB Local does not touch the figures above.
      const steady = dynamo.at(-1);
      let fullPass: FullPass | null = null;
      if (steady && steady.tunnels > 1 && !incomplete) {
        bench.log(`a full status pass over the table, ${opened + 1} idle tunnels held`);
        fullPass = await measureFullPass(stack, steady.perMinute.readUnits).catch((err: unknown) => {
          const message = err instanceof Error ? err.message : String(err);
          errors.push(`full pass not measured: ${message.split('\n')[0]}`);
          return null;
        });
        if (fullPass) {
          bench.log(
            `  ${fullPass.tunnels} tunnels in ${fullPass.ms} ms, ${Math.round(fullPass.readUnits)} read units`,
          );
        }
      }
      return {
        opened,
        checkpoint,
        rssBefore,
        rssAfter,
        rssTimeline,
        dynamo,
        countedSizes,
        latencyAtLoad: latency.ours ?? [],
        fullPass,
        openMs,
        writeMs,
        incomplete,
        errors,
      };
    });
  } finally {
    // Later phases run on the table set-up left: the idle tunnels go, sessions closed first
    // (withGroup), and the stack's writes for their disconnects pass before the next phase.
    // A failed delete is said, not thrown: it must not hide what was measured (or why it was not).
    bench.log(`deleting the ${written.length} idle-phase tunnels`);
    deleteStarted = performance.now();
    await stack.deleteTunnels(written).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      bench.log(`  deleting the idle-phase tunnels failed: ${message}`);
      deleteError = `deleting the idle-phase tunnels failed: ${message}`;
    });
  }
  const deleteMs = performance.now() - deleteStarted;
  const settledMs = await afterWritesSettle(stack.proxy, QUIET_WRITES_PER_SECOND, CHURN_TIMEOUT_MS);
  bench.log(
    `  deleted in ${Math.round(deleteMs)} ms; the disconnects' writes passed ${Math.round(settledMs / 1000)} s later`,
  );
  return {
    ...measured,
    deleteMs,
    churnMs: settledMs,
    errors: deleteError ? [...measured.errors, deleteError] : measured.errors,
  };
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
  const oursPerTunnelKb =
    ours.opened > 0 && !ours.incomplete ? (ours.rssAfter - ours.rssBefore) / ours.opened / 1000 : null;
  const opensshPerTunnelKb =
    openssh.opened > 0 ? (openssh.pssAfter - openssh.pssBefore) / openssh.opened / 1000 : null;
  const ratio = oursPerTunnelKb !== null && opensshPerTunnelKb ? oursPerTunnelKb / opensshPerTunnelKb : null;
  // The last step's growth alone: one-time costs (code compiled, pools) are in the first steps.
  const atCheckpoint = [...ours.rssTimeline].reverse().find((r) => r.tunnels === 1 + ours.checkpoint);
  const held = ours.opened + 1;
  const marginalKb =
    atCheckpoint && ours.opened > ours.checkpoint
      ? (ours.rssAfter - atCheckpoint.bytes) / (ours.opened - ours.checkpoint) / 1000
      : null;
  const figures: Figure[] = [
    {
      id: 'idle.tunnels',
      label: 'Idle reverse tunnels held at once',
      unit: 'tunnels',
      ours: held,
      openssh: openssh.opened,
      note: `ours: ${ours.opened} ssh2 customers and the stock \`ssh -N -R\`; ${CUSTOMERS_NOTE}; fewer on sshd, whose cost per tunnel is linear (about ${Math.round(
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
          ? `, ${marginalKb.toFixed(1)} KB each from ${ours.checkpoint + 1} to ${held}`
          : '') +
        `; sshd: summed Pss of its ` +
        `processes ${(openssh.pssBefore / 1e6).toFixed(1)} → ${(openssh.pssAfter / 1e6).toFixed(1)} MB over ${openssh.opened} tunnels`,
    },
    ...latencyFigures(
      'idle.connect',
      `New connection with ${held.toLocaleString('en-US')} idle tunnels open`,
      ours.latencyAtLoad,
      undefined,
    ),
    ...dynamoFigures(ours.dynamo, ours.countedSizes),
    ...fullPassFigures(ours.fullPass),
  ];
  return {
    figures,
    details: { ours: { ...ours, latencyAtLoad: undefined, latencyAtLoadMs: ours.latencyAtLoad }, openssh },
    notes: ours.errors.length > 0 ? [`idle phase: ${ours.errors.slice(0, 3).join('; ')}`] : [],
  };
}

/**
 * `npm run bench [-- --quick] [-- --only=<phase,...>]`: our stack and OpenSSH side by side on this
 * machine, each figure with its ratio to OpenSSH and its target (DESIGN.md, "Performance
 * targets"). Prints the table, writes bench/results.json and, for full runs, docs/BENCHMARKS.md.
 * Every process, user and file it creates is removed at the end, on failure, and on Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { measureApi } from './api-latency';
import { measureBundle } from './bundle';
import { type Bench, type BenchBasics, type Measured, settingsFor } from './context';
import { measureIdleTunnels } from './idle-tunnels';
import { measureLoginKex } from './login-kex';
import { measureLoginRate } from './login-rate';
import { measureNewConnections } from './new-connection';
import { type BenchResults, type Figure, formatSummary, type Machine, ratioOf, writeResults } from './report';
import { setUp } from './setup';
import { measureStandard } from './standard';
import { Cleanup } from './support/cleanup';
import { quiesce } from './support/procfs';
import { measureReverseBulk } from './throughput';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Before each phase: what the previous one left running (state writes, sweeps) may take this long. */
const QUIESCE_TIMEOUT_MS = 30_000;
const RESULTS_JSON = `${REPO_ROOT}bench/results.json`;
const BENCHMARKS_MD = `${REPO_ROOT}docs/BENCHMARKS.md`;

type Phase =
  | { name: string; needsStack: true; run: (bench: Bench) => Promise<Measured> }
  | { name: string; needsStack: false; run: (basics: BenchBasics) => Promise<Measured> };

/**
 * In this order: idle first, while the table holds only what set-up wrote (the 1-tunnel write
 * count needs a quiet stack); new connections after bulk, once the churn of 2,000 tunnels going
 * down (state writes, sweeps) has passed.
 */
const PHASES: Phase[] = [
  { name: 'idle', needsStack: true, run: measureIdleTunnels },
  { name: 'bulk', needsStack: true, run: measureReverseBulk },
  { name: 'connect', needsStack: true, run: measureNewConnections },
  { name: 'login', needsStack: true, run: measureLoginRate },
  { name: 'login-kex', needsStack: true, run: measureLoginKex },
  { name: 'standard', needsStack: true, run: measureStandard },
  { name: 'api', needsStack: true, run: measureApi },
  { name: 'bundle', needsStack: false, run: measureBundle },
];

function machine(loadAtStart: number[]): Machine {
  const require = createRequire(import.meta.url);
  let nativeCrypto = false;
  try {
    nativeCrypto =
      (require('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean }).bindingAvailable === true;
  } catch {
    // not loadable: reported as missing
  }
  const ssh2 = JSON.parse(readFileSync(require.resolve('ssh2/package.json'), 'utf8')) as { version: string };
  let openssh = 'OpenSSH (version unknown)';
  try {
    // `ssh -V` prints to stderr.
    openssh = execFileSync('sh', ['-c', 'ssh -V 2>&1'], { encoding: 'utf8' }).trim();
  } catch {
    // keep the placeholder
  }
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: totalmem() / 1024 ** 3,
    kernel: release(),
    node: process.versions.node,
    openssh,
    ssh2: ssh2.version,
    ssh2NativeCrypto: nativeCrypto,
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: loadavg(),
  };
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const only = args
    .find((a) => a.startsWith('--only='))
    ?.slice('--only='.length)
    .split(',');
  const unknown = only?.filter((name) => !PHASES.some((p) => p.name === name)) ?? [];
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown phase(s) ${unknown.join(', ')}; phases: ${PHASES.map((p) => p.name).join(', ')}\n`,
    );
    return 2;
  }
  const phases = PHASES.filter((p) => !only || only.includes(p.name));
  const settings = settingsFor(quick);
  const startedAt = new Date();
  const t0 = performance.now();
  const loadAtStart = loadavg();
  const log = (line: string) => {
    process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
  };
  const cleanup = new Cleanup();

  // Ctrl-C, SIGTERM, or the overall deadline: undo everything, then exit (whether or not the
  // phase in progress ever returns).
  let interrupted = false;
  let aborting: Promise<void> | undefined;
  const abort = (why: string, code: number) => {
    if (aborting) return;
    interrupted = true;
    log(`${why}: cleaning up`);
    aborting = cleanup
      .runAll(log)
      .then(() => cleanup.settleLate(10_000))
      .finally(() => process.exit(code));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => abort(signal, 130));
  const deadlineMs = quick ? 8 * 60_000 : 25 * 60_000;
  const deadline = setTimeout(
    () => abort(`overall deadline of ${deadlineMs / 60_000} min passed`, 1),
    deadlineMs,
  );

  const figures: Figure[] = [];
  const details: Record<string, unknown> = {};
  const notes: string[] = [];
  let failed = 0;
  notes.push(
    `our side: what \`npm start\` runs (API, gateway and sweeper in one process, the sweeper on a worker thread; SWEEP_INTERVAL_MS=${settings.sweepIntervalMs} ` +
      'instead of 60000 so new tunnels are recorded up sooner, otherwise defaults), DynamoDB Local in memory behind a ' +
      'counting proxy; OpenSSH side: sshd with its own config as a throwaway user; both on these same cores, with the ' +
      "customer's ssh and the bench's own traffic ends",
  );
  try {
    const bench = phases.some((p) => p.needsStack) ? await setUp(settings, cleanup, log) : undefined;
    for (const phase of phases) {
      if (interrupted) break;
      if (bench && phase.needsStack) {
        const waited = await quiesce(bench.stack.pid, QUIESCE_TIMEOUT_MS);
        if (waited > 1_500) log(`waited ${(waited / 1000).toFixed(1)} s for the stack to go quiet`);
      }
      log(`phase ${phase.name}`);
      const phaseStarted = performance.now();
      try {
        let measured: Measured;
        if (!phase.needsStack) measured = await phase.run({ settings, cleanup, log });
        else if (bench) measured = await phase.run(bench);
        else throw new Error('set-up did not run');
        figures.push(...measured.figures);
        details[phase.name] = measured.details;
        notes.push(...(measured.notes ?? []));
      } catch (err) {
        failed++;
        const message = err instanceof Error ? err.message : String(err);
        log(`phase ${phase.name} failed: ${message}`);
        notes.push(`phase ${phase.name} failed: ${message.split('\n')[0]}`);
      }
      log(`phase ${phase.name} took ${((performance.now() - phaseStarted) / 1000).toFixed(1)} s`);
    }
  } catch (err) {
    failed++;
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    log(`set-up failed: ${message}`);
    notes.push(`set-up failed: ${message.split('\n')[0]}`);
  } finally {
    clearTimeout(deadline);
    if (!interrupted) {
      log('cleaning up');
      await cleanup.runAll(log);
    }
  }
  if (aborting) {
    await aborting; // exits the process once clean-up is done
    return 130;
  }

  const flags = [...(quick ? ['--quick'] : []), ...(only ? [`--only=${only.join(',')}`] : [])];
  const command = `npm run bench${flags.length > 0 ? ` -- ${flags.join(' ')}` : ''}`;
  const results: BenchResults = {
    mode: quick ? 'quick' : 'full',
    command,
    startedAt: startedAt.toISOString(),
    durationSec: (performance.now() - t0) / 1000,
    machine: machine(loadAtStart),
    figures: figures.map((f) => ({ ...f, ratio: ratioOf(f) })),
    notes,
    details: { settings, ...details },
  };
  process.stdout.write(formatSummary(results));
  // A quick or partial run does not replace the published full-run table.
  const publish = !quick && !only;
  await writeResults(results, RESULTS_JSON, publish ? BENCHMARKS_MD : undefined);
  log(`wrote ${RESULTS_JSON}${publish ? ` and ${BENCHMARKS_MD}` : ''}`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);

/**
 * Reverse-tunnel bulk throughput (target 1): the customer's stock `ssh -N -R` to our gateway and
 * to sshd, then both with `-c aes128-gcm@openssh.com`; a transfer each way per run, runs
 * interleaved across the four paths, median per path and direction.
 */

import { freePort } from '../local/free-port';
import type { Bench, Measured } from './context';
import type { Figure } from './report';
import {
  opensshReverseCommand,
  ourReverseCommand,
  type RunningSsh,
  startCustomerSsh,
} from './support/openssh';
import { quietMachine, treeCpuSeconds } from './support/procfs';
import { mbPerSec, median } from './support/stats';
import { transfer } from './support/traffic';

export const AES_GCM = 'aes128-gcm@openssh.com';
const WARM_UP_BYTES = 64 * 1024 * 1024;
/** Long enough for a burst of the stack's own work (a sweeper pass, a heartbeat) to pass. */
const QUIET_TIMEOUT_MS = 20_000;

/** How the bulk figures were sampled, for their note. */
export function bulkMethod(bytes: number, runs: number): string {
  return (
    `${bytes / 1024 / 1024} MiB each way, median of ${runs} runs; each run starts once the machine is quiet, ` +
    "so no side takes the CPU of the stack's own bursts (DynamoDB Local, a sweeper pass)"
  );
}

export interface BulkSamples {
  /** MB/s per run, platform → customer service. */
  up: number[];
  /** MB/s per run, customer service → platform. */
  down: number[];
  /** CPU seconds per GB moved (10^9 bytes, both directions together), per metered process. */
  cpuSecondsPerGB: Record<string, number>;
  /** Time spent before this path's runs waiting for the machine to go quiet. */
  quietWaitMs: number;
}

/** Reads a process's (or process tree's) CPU seconds so far. */
export type CpuMeter = () => Promise<number>;

/**
 * `runs` transfers of `bytes` each way through each port, interleaved run by run. `meters` names
 * the processes whose CPU time to charge to each path (CPU per byte is steadier than MB/s when
 * other work shares the machine).
 */
export async function sampleBulk(
  ports: Record<string, number>,
  bytes: number,
  runs: number,
  log: (line: string) => void,
  meters: Record<string, Record<string, CpuMeter>> = {},
): Promise<Record<string, BulkSamples>> {
  // Slower than 20 MB/s is a failure, not a figure.
  const timeoutMs = Math.max(30_000, (bytes / 20e6) * 1000);
  const samples: Record<string, BulkSamples> = {};
  const cpu: Record<string, Record<string, number>> = {};
  for (const name of Object.keys(ports)) {
    samples[name] = { up: [], down: [], cpuSecondsPerGB: {}, quietWaitMs: 0 };
    cpu[name] = {};
  }
  const readAll = async (name: string) => {
    const out: Record<string, number> = {};
    for (const [label, meter] of Object.entries(meters[name] ?? {})) out[label] = await meter();
    return out;
  };
  // Warm-up, not counted: code paths compiled and buffers allocated on every side first.
  const warmUpBytes = Math.min(bytes / 4, WARM_UP_BYTES);
  for (const port of Object.values(ports)) {
    await transfer(port, 'U', warmUpBytes, timeoutMs);
    await transfer(port, 'D', warmUpBytes, timeoutMs);
  }
  for (let run = 1; run <= runs; run++) {
    for (const [name, port] of Object.entries(ports)) {
      const entry = samples[name] ?? { up: [], down: [], cpuSecondsPerGB: {}, quietWaitMs: 0 };
      // Each run starts on a quiet machine, so neither side's figures take a sweep's CPU burst.
      const waited = await quietMachine(QUIET_TIMEOUT_MS);
      entry.quietWaitMs += waited;
      const before = await readAll(name);
      entry.up.push(mbPerSec(bytes, await transfer(port, 'U', bytes, timeoutMs)));
      entry.down.push(mbPerSec(bytes, await transfer(port, 'D', bytes, timeoutMs)));
      const after = await readAll(name);
      const spent = cpu[name] ?? {};
      for (const label of Object.keys(after))
        spent[label] = (spent[label] ?? 0) + (after[label] ?? 0) - (before[label] ?? 0);
      log(
        `  run ${run} ${name}: ${entry.up.at(-1)?.toFixed(0)} MB/s up, ${entry.down.at(-1)?.toFixed(0)} MB/s down` +
          (waited > 1_000 ? ` (after ${(waited / 1000).toFixed(1)} s waiting for a quiet machine)` : ''),
      );
    }
  }
  const gigabytes = (2 * bytes * runs) / 1e9;
  for (const [name, spent] of Object.entries(cpu)) {
    const entry = samples[name];
    if (!entry) continue;
    for (const [label, seconds] of Object.entries(spent)) entry.cpuSecondsPerGB[label] = seconds / gigabytes;
  }
  return samples;
}

export function bulkFigures(
  id: string,
  label: string,
  ours: BulkSamples | undefined,
  openssh: BulkSamples | undefined,
  target: { factor: number; text: string } | undefined,
  note: string,
): Figure[] {
  const row = (direction: 'up' | 'down', text: string, withNote: boolean): Figure => {
    const o = ours ? median(ours[direction]) : null;
    const s = openssh ? median(openssh[direction]) : null;
    return {
      id: `${id}.${direction}`,
      label: `${label}: ${text}`,
      unit: 'MB/s',
      ours: o,
      openssh: s,
      ...(target
        ? { target: { text: target.text, met: o !== null && s !== null ? o >= target.factor * s : null } }
        : {}),
      ...(withNote ? { note } : {}),
    };
  };
  return [row('up', 'platform → service', true), row('down', 'service → platform', false)];
}

/** Server CPU seconds per GB moved: ours (the stack process) against sshd (all its processes). */
export function cpuFigure(
  id: string,
  label: string,
  ours: BulkSamples | undefined,
  openssh: BulkSamples | undefined,
  note: string,
): Figure {
  return {
    id,
    label,
    unit: 'CPU s/GB',
    ours: ours?.cpuSecondsPerGB.server ?? null,
    openssh: openssh?.cpuSecondsPerGB.server ?? null,
    note,
  };
}

/** The bench process's own CPU seconds (it is both the platform side and the customer's service). */
export const benchCpu: CpuMeter = async () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

export async function measureReverseBulk(bench: Bench): Promise<Measured> {
  const { bulkBytes, bulkRuns } = bench.settings;
  const aesOurs = await startCustomerSsh(
    bench.cleanup,
    bench.customer,
    ourReverseCommand(bench.tunnels.aes, AES_GCM),
    bench.tunnels.aes.reverse?.remotePort ?? 0,
  );
  const aesPort = await freePort();
  const aesOpenssh = await startCustomerSsh(
    bench.cleanup,
    bench.customer,
    opensshReverseCommand(bench.sshd, aesPort, bench.service.port, AES_GCM),
    aesPort,
  );
  try {
    const sshdPid = await bench.sshd.listenerPid();
    const gateway: CpuMeter = () => treeCpuSeconds(bench.stack.pid);
    const sshd: CpuMeter = () => treeCpuSeconds(sshdPid);
    const client =
      (ssh: RunningSsh): CpuMeter =>
      () =>
        treeCpuSeconds(ssh.proc.child.pid ?? 0);
    const samples = await sampleBulk(
      {
        oursStock: bench.stockSsh.ours.port,
        opensshStock: bench.stockSsh.openssh.port,
        oursAes: aesOurs.port,
        opensshAes: aesOpenssh.port,
      },
      bulkBytes,
      bulkRuns,
      bench.log,
      {
        oursStock: { server: gateway, client: client(bench.stockSsh.ours), bench: benchCpu },
        opensshStock: { server: sshd, client: client(bench.stockSsh.openssh), bench: benchCpu },
        oursAes: { server: gateway, client: client(aesOurs), bench: benchCpu },
        opensshAes: { server: sshd, client: client(aesOpenssh), bench: benchCpu },
      },
    );
    const ciphers = {
      oursStock: bench.stockSsh.ours.cipher(),
      opensshStock: bench.stockSsh.openssh.cipher(),
      oursAes: aesOurs.cipher(),
      opensshAes: aesOpenssh.cipher(),
    };
    const size = bulkMethod(bulkBytes, bulkRuns);
    return {
      figures: [
        ...bulkFigures(
          'reverse.bulk.stock',
          'Reverse bulk, stock ssh client',
          samples.oursStock,
          samples.opensshStock,
          { factor: 1.5, text: '≥ 1.5× sshd' },
          `${size}; negotiated ${ciphers.oursStock} with us, ${ciphers.opensshStock} with sshd`,
        ),
        ...bulkFigures(
          'reverse.bulk.aes',
          `Reverse bulk, ssh -c ${AES_GCM}`,
          samples.oursAes,
          samples.opensshAes,
          { factor: 0.9, text: '≥ 0.9× sshd' },
          `${size}; negotiated ${ciphers.oursAes} with us, ${ciphers.opensshAes} with sshd`,
        ),
        cpuFigure(
          'reverse.cpu.stock',
          'Reverse bulk, stock ssh client: server CPU per GB',
          samples.oursStock,
          samples.opensshStock,
          'user + system time of the stack process vs all sshd processes, both directions; steadier than MB/s on a shared machine',
        ),
        cpuFigure(
          'reverse.cpu.aes',
          `Reverse bulk, ssh -c ${AES_GCM}: server CPU per GB`,
          samples.oursAes,
          samples.opensshAes,
          'same cipher on both sides',
        ),
      ],
      details: { bytes: bulkBytes, runs: bulkRuns, mbPerSec: samples, ciphers },
    };
  } finally {
    await Promise.all([aesOurs.stop(), aesOpenssh.stop()]);
  }
}

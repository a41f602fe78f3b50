/**
 * Chaos scenario "silent flood" (issue 12): 2,000 TCP connections that never send an
 * identification string, from 8 loopback sources (127.0.0.1-8), held open (each one the gateway
 * drops is reopened, at a bounded rate), while a valid customer from a ninth source (127.0.0.9)
 * logs in with Debian's OpenSSH, `reverse.commands.ssh` verbatim apart from `-v` and the bind
 * address, 20 times in a row. Each login must be up (forward granted) within 2 s; the silent ones
 * must be gone by the banner deadline. `silentFlood()` runs it end to end against `npm start`'s
 * stack as a process of its own (its RSS is the gateway's); `runSilentFlood()` runs it against any
 * running gateway (the test suite's in-process stack).
 */
import type { ChildProcess } from 'node:child_process';
import { parseEnv } from '../../shared/config';
import type { Tunnel } from '../../shared/schemas';
import { type CustomerProcess, customerFor, requireTools, sshKeygen } from '../../test/helpers/customer';
import { startEchoServer } from '../../test/helpers/echo';
import { Cleanup } from '../support/cleanup';
import { ensureOwnOpenFiles, openFilesLimit, rssBytes } from '../support/procfs';
import { RemoteSilentClients } from '../support/silent-clients-remote';
import { startBenchStack } from '../support/stack';
import { median, percentile, round } from '../support/stats';
import type { ChaosFigure } from './figures';

/** A running gateway to flood. */
export interface FloodTarget {
  sshPort: number;
  /** The gateway's banner deadline (SSH_BANNER_TIMEOUT_MS). */
  bannerTimeoutMs: number;
  /** A reverse tunnel to `service`, the customer holding the key of `publicKey`. */
  createReverseTunnel(service: { host: string; port: number }, publicKey: string): Promise<Tunnel>;
  /** The gateway's log lines so far. */
  logs(): readonly Record<string, unknown>[];
  /** The gateway's resident memory, when it runs as a process of its own. */
  rssBytes?: () => Promise<number>;
}

export interface SilentFloodSizes {
  silent: number;
  silentSources: string[];
  customerSource: string;
  /** Logins under the flood, one after the other. */
  logins: number;
  /** Logins before the flood, for comparison. */
  baselineLogins: number;
  /** The flood's connects per second at most (first opens and reopens together). */
  opensPerSecond: number;
  /** Its connects in all at most (bounds the run). */
  maxOpens: number;
  /** Each login must be up within this. */
  loginBoundMs: number;
}

export const FULL_SIZE: SilentFloodSizes = {
  silent: 2_000,
  silentSources: Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 1}`),
  customerSource: '127.0.0.9',
  logins: 20,
  baselineLogins: 3,
  opensPerSecond: 1_000,
  maxOpens: 200_000,
  loginBoundMs: 2_000,
};

/** A login not up after this has failed (far beyond the bound: the figure shows by how much). */
const LOGIN_GIVE_UP_MS = 15_000;
/** Closes this much past the deadline still count as the deadline's (timers, a busy event loop). */
const DEADLINE_SLACK_MS = 1_000;
/** The drop log writes at most this many lines per reason per 10 s window (fargate/admission/drop-log.ts). */
const DROP_LINES_PER_WINDOW = 20;
const DROP_REASONS = 7;

export interface SilentFloodResult {
  figures: ChaosFigure[];
  loginMs: number[];
  /** ssh's stderr of each login that did not come up. */
  loginFailures: string[];
  baselineLoginMs: number[];
  silent: {
    opened: number;
    /** Closed by the gateway at or after its banner deadline. */
    droppedAtDeadline: number;
    /** Closed earlier by admission (refused, evicted, dropped at random). */
    droppedEarly: number;
    longestLifeMs: number;
    /** After the flood stopped reopening: until the gateway had closed the last one. */
    drainMs: number;
    leftOpen: number;
  };
}

/** Starts the customer's ssh and resolves with how long until its forward was granted, or the failure. */
function timedLogin(
  start: () => CustomerProcess,
  giveUpMs: number,
): Promise<{ ms: number; ssh: CustomerProcess } | { error: string; ssh: CustomerProcess }> {
  const started = performance.now();
  const ssh = start();
  const stderr = (ssh.child as ChildProcess).stderr;
  return new Promise((resolve) => {
    let seen = '';
    const done = (result: { ms: number; ssh: CustomerProcess } | { error: string; ssh: CustomerProcess }) => {
      clearTimeout(timer);
      stderr?.off('data', onData);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      // OpenSSH -v: debug1 "remote forward success for: listen <port>, connect <host>:<port>".
      if (/remote forward success for: listen/.test(seen)) done({ ms: performance.now() - started, ssh });
    };
    const timer = setTimeout(
      () => done({ error: `not up within ${giveUpMs} ms: ${ssh.stderr()}`, ssh }),
      giveUpMs,
    );
    stderr?.on('data', onData);
    void ssh.exited.then(() => done({ error: `ssh exited: ${ssh.stderr().slice(-2_000)}`, ssh }));
  });
}

/** Runs the scenario against `target`; cleans up what it started (not the target). */
export async function runSilentFlood(
  target: FloodTarget,
  sizes: SilentFloodSizes,
  log: (line: string) => void = () => {},
): Promise<SilentFloodResult> {
  requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep', 'prlimit');
  // The gateway may run in this process (the test suite's stack): one socket per silent connection.
  await ensureOwnOpenFiles(sizes.silent + 1_024);
  const cleanup = new Cleanup();
  try {
    const echo = await startEchoServer();
    cleanup.add('echo service', () => echo.close());
    const key = await sshKeygen('ed25519');
    const tunnel = await target.createReverseTunnel({ host: '127.0.0.1', port: echo.port }, key.publicKey);
    const command = tunnel.reverse?.commands.ssh;
    if (!command?.startsWith('ssh ')) throw new Error(`tunnel ${tunnel.id} has no ssh command`);
    const customer = await customerFor(tunnel, key.privateKey);
    cleanup.add('customer user', () => customer.dispose());
    const login = command.replace(/^ssh /, `ssh -v -o BindAddress=${sizes.customerSource} `);

    const loginsOf = async (count: number, failures: string[]) => {
      const times: number[] = [];
      for (let i = 0; i < count; i++) {
        const result = await timedLogin(() => customer.start(login), LOGIN_GIVE_UP_MS);
        if ('ms' in result) times.push(result.ms);
        else failures.push(result.error);
        result.ssh.kill();
        await result.ssh.exited;
      }
      return times;
    };

    log(`silent flood: ${sizes.baselineLogins} logins before the flood`);
    const baselineFailures: string[] = [];
    const baselineLoginMs = await loginsOf(sizes.baselineLogins, baselineFailures);
    if (baselineFailures.length > 0) throw new Error(`logins fail without any flood: ${baselineFailures[0]}`);
    const rssBefore = target.rssBytes ? await target.rssBytes() : undefined;
    let rssPeak = rssBefore ?? 0;
    const sampler = target.rssBytes
      ? setInterval(() => {
          void target.rssBytes?.().then((rss) => {
            rssPeak = Math.max(rssPeak, rss);
          });
        }, 200)
      : undefined;
    cleanup.add('memory sampler', () => clearInterval(sampler));

    log(`silent flood: ${sizes.silent} silent connections from ${sizes.silentSources.length} sources`);
    const floodStartedAt = Date.now();
    // In a process of its own: the flood's CPU is the attacker's, not the gateway's.
    const clients = await RemoteSilentClients.start(
      cleanup,
      {
        port: target.sshPort,
        sources: sizes.silentSources,
        count: sizes.silent,
        opensPerSecond: sizes.opensPerSecond,
        maxOpens: sizes.maxOpens,
      },
      await openFilesLimit(sizes.silent + 1_024),
    );
    const openDeadline = performance.now() + (sizes.silent / sizes.opensPerSecond) * 1_000 + 10_000;
    while (clients.opened < sizes.silent && performance.now() < openDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    log(`silent flood: ${sizes.logins} logins from ${sizes.customerSource} under the flood`);
    const loginFailures: string[] = [];
    const loginMs = await loginsOf(sizes.logins, loginFailures);

    const outcome = await clients.stop(target.bannerTimeoutMs + 10_000);
    const { drainMs, leftOpen } = outcome;
    clearInterval(sampler);
    const floodEndedAt = Date.now();

    const lifetimes = outcome.lifetimesMs;
    const atDeadline = lifetimes.filter((ms) => ms >= target.bannerTimeoutMs - 50).length;
    const longestLifeMs = lifetimes.reduce((a, b) => Math.max(a, b), 0);
    const dropLinesMax = maxDropLinesPerWindow(target.logs(), floodStartedAt, floodEndedAt);

    const bound = sizes.loginBoundMs;
    const deadlineBound = target.bannerTimeoutMs + DEADLINE_SLACK_MS;
    const figures: ChaosFigure[] = [
      {
        name: 'logins up under the flood',
        value: loginMs.length,
        unit: `of ${sizes.logins}`,
        target: `= ${sizes.logins}`,
        ok: loginMs.length === sizes.logins,
      },
      { name: 'login latency under the flood, p50', value: round(median(loginMs), 0), unit: 'ms' },
      { name: 'login latency under the flood, p99', value: round(percentile(loginMs, 99), 0), unit: 'ms' },
      {
        name: 'login latency under the flood, max',
        value: round(loginMs.length > 0 ? Math.max(...loginMs) : Number.NaN, 0),
        unit: 'ms',
        target: `<= ${bound} ms`,
        ok: loginMs.length === sizes.logins && Math.max(...loginMs) <= bound,
      },
      { name: 'login latency without a flood, median', value: round(median(baselineLoginMs), 0), unit: 'ms' },
      { name: 'silent connections opened', value: outcome.opened, unit: 'connections' },
      {
        name: 'silent connections dropped by the banner deadline',
        value: atDeadline,
        unit: 'connections',
        target: '> 0',
        ok: atDeadline > 0,
      },
      {
        name: 'silent connections dropped earlier by admission',
        value: lifetimes.length - atDeadline,
        unit: 'connections',
      },
      {
        name: 'longest life of a silent connection',
        value: round(longestLifeMs, 0),
        unit: 'ms',
        target: `<= ${deadlineBound} ms (banner deadline + ${DEADLINE_SLACK_MS} ms)`,
        ok: longestLifeMs <= deadlineBound,
      },
      {
        name: 'time to drop the silent connections once the flood stops',
        value: round(drainMs, 0),
        unit: 'ms',
        target: `<= ${deadlineBound} ms, none left open`,
        ok: drainMs <= deadlineBound && leftOpen === 0,
      },
      {
        name: 'drop log lines in a 10 s window, max',
        value: dropLinesMax,
        unit: 'lines',
        target: `<= ${DROP_LINES_PER_WINDOW * DROP_REASONS} + summaries`,
        ok: dropLinesMax <= DROP_LINES_PER_WINDOW * DROP_REASONS * 2,
      },
    ];
    if (rssBefore !== undefined) {
      const deltaMiB = (rssPeak - rssBefore) / 2 ** 20;
      figures.push({
        name: 'gateway memory delta under the flood (peak RSS - before)',
        value: round(deltaMiB, 1),
        unit: 'MiB',
        target: '<= 64 MiB',
        ok: deltaMiB <= 64,
      });
    }
    return {
      figures,
      loginMs,
      loginFailures,
      baselineLoginMs,
      silent: {
        opened: outcome.opened,
        droppedAtDeadline: atDeadline,
        droppedEarly: lifetimes.length - atDeadline,
        longestLifeMs,
        drainMs,
        leftOpen,
      },
    };
  } finally {
    await cleanup.runAll(log);
  }
}

/** The most `ssh connection dropped` lines plus their summaries logged in any 10 s window. */
function maxDropLinesPerWindow(lines: readonly Record<string, unknown>[], from: number, to: number): number {
  const buckets = new Map<number, number>();
  for (const line of lines) {
    if (line.msg !== 'ssh connection dropped' && line.msg !== 'ssh connection drops not logged one by one')
      continue;
    const at = typeof line.time === 'string' ? Date.parse(line.time) : Number.NaN;
    if (!(at >= from && at <= to)) continue;
    const bucket = Math.floor((at - from) / 10_000);
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + 1);
  }
  return Math.max(0, ...buckets.values());
}

/**
 * The scenario end to end, for `npm run chaos`: DynamoDB Local and the stack `npm start` runs (a
 * process of its own, product defaults unless `env` says otherwise), the flood, the figures, and
 * everything removed afterwards.
 */
export async function silentFlood(
  options: {
    sizes?: Partial<SilentFloodSizes>;
    env?: Record<string, string>;
    log?: (line: string) => void;
  } = {},
): Promise<{ figures: ChaosFigure[] }> {
  const sizes = { ...FULL_SIZE, ...options.sizes };
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  requireTools('java', 'prlimit');
  const cleanup = new Cleanup();
  try {
    const stack = await startBenchStack(cleanup, {
      portRange: { from: 10_000, to: 10_999 },
      sweepIntervalMs: 60_000,
      openFiles: await openFilesLimit(65_536),
      env: options.env,
    });
    const [apiKey] = stack.api.keys;
    if (!apiKey) throw new Error('the bench stack has no API key');
    const result = await runSilentFlood(
      {
        sshPort: stack.sshPort,
        bannerTimeoutMs: parseEnv(options.env ?? {}).SSH_BANNER_TIMEOUT_MS,
        createReverseTunnel: (service, publicKey) =>
          stack.api.createTunnel(apiKey, { type: 'reverse', name: 'silent-flood', service, publicKey }),
        logs: () => stack.logs(),
        rssBytes: () => rssBytes(stack.pid),
      },
      sizes,
      log,
    );
    for (const failure of result.loginFailures) log(`silent flood: a login failed: ${failure.slice(-500)}`);
    return { figures: result.figures };
  } finally {
    await cleanup.runAll(log);
  }
}

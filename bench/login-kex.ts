/**
 * What the key exchange costs a login: server CPU per session with each method, at a fixed number
 * of concurrent logins, ours and sshd's side by side. OpenSSH ≥ 9 customers negotiate a
 * post-quantum hybrid (sntrup761x25519, or mlkem768x25519 from 9.9), while the login ladder's ssh2
 * customers use curve25519: this is the difference. The customers' own cost (a sntrup761 key pair
 * takes them tens of ms in WebAssembly) only slows the loop; it is metered apart.
 */
import { diffieHellman, generateKeyPairSync } from 'node:crypto';
import { clientKeys, type HybridKexMethod, serverReply } from '../fargate/pq-kex/hybrid-kex';
import { loadKems } from '../fargate/pq-kex/kems';
import { hybridKexMethods } from '../fargate/pq-kex/post-quantum-kex';
import type { Bench, Measured } from './context';
import { metered } from './login-rate';
import type { Figure } from './report';
import { poolTunnels } from './setup';
import { descendantsNamed, treeCpuSeconds } from './support/procfs';
import type { ForwardSession, SshTarget } from './support/tunnel-clients-protocol';

/** Concurrent login loops: past the customers' key generation, not so many that sshd queues. */
const CONCURRENCY = 4;
const SNTRUP = 'sntrup761x25519-sha512@openssh.com';
const MLKEM = 'mlkem768x25519-sha256';
const CURVE = 'curve25519-sha256';
/** How long a server's idle CPU is sampled, to take it out of the per-login figures. */
const IDLE_SAMPLE_MS = 3_000;

/** CPU ms the process tree spends per wall ms with no logins (heartbeats, sweeps, timers). */
async function idleCpuPerMs(meter: () => Promise<number>): Promise<number> {
  const before = await meter();
  await new Promise((resolve) => setTimeout(resolve, IDLE_SAMPLE_MS));
  return (((await meter()) - before) * 1000) / IDLE_SAMPLE_MS;
}

/**
 * CPU ms per login less the idle share of the window: a slower method fits fewer logins into the
 * same window, and would otherwise carry more of the server's background work per login.
 */
function netCpuMs(
  cpuMsPerLogin: number,
  step: { ms: number; completed: number } | undefined,
  idlePerMs: number,
) {
  if (!step || step.completed === 0) return Number.NaN;
  return cpuMsPerLogin - (idlePerMs * step.ms) / step.completed;
}

/** Server-side key exchange steps timed in this process, per method. */
const COMPUTE_ROUNDS = 200;

/** CPU ms of `step` per call, after a warm-up (V8 tiers WebAssembly up on first use). */
function cpuMsPerCall(step: () => void, rounds: number): number {
  for (let i = 0; i < 20; i++) step();
  const before = process.cpuUsage();
  for (let i = 0; i < rounds; i++) step();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / rounds;
}

/** The server's share of each key exchange (no I/O, no signature): what the method itself costs. */
async function serverComputeMs(): Promise<Record<string, number>> {
  const methods = hybridKexMethods(await loadKems());
  const named = (label: string): HybridKexMethod => {
    const method = methods.find((m) => m.label === label);
    if (!method) throw new Error(`no method ${label}`);
    return method;
  };
  const sntrup = named('sntrup761x25519');
  const mlkem = named('mlkem768x25519');
  const sntrupInit = clientKeys(sntrup).init;
  const mlkemInit = clientKeys(mlkem).init;
  const clientX25519 = generateKeyPairSync('x25519').publicKey;
  return {
    [CURVE]: cpuMsPerCall(() => {
      diffieHellman({ privateKey: generateKeyPairSync('x25519').privateKey, publicKey: clientX25519 });
    }, COMPUTE_ROUNDS),
    [SNTRUP]: cpuMsPerCall(() => serverReply(sntrup, sntrupInit), COMPUTE_ROUNDS),
    [MLKEM]: cpuMsPerCall(() => serverReply(mlkem, mlkemInit), COMPUTE_ROUNDS),
  };
}

export async function measureLoginKex(bench: Bench): Promise<Measured> {
  const { settings, clients, sshd, stack } = bench;
  // Longer than a ladder step: a sntrup761 login costs the ssh2 customers a key pair each, so
  // fewer logins fit a second, and the figure is per login.
  const stepMs = Math.max(2 * settings.loginStepMs, 3_000);
  const options = (kex: string, ms = stepMs) => ({
    ladder: [CONCURRENCY],
    stepMs: ms,
    timeoutMs: 20_000,
    kex: [kex],
  });
  // Unmetered logins first: V8 compiles each WebAssembly module's optimized tier on first use.
  const warmUp = (target: SshTarget, sessions: ForwardSession[], kex: string) =>
    clients.loginRate(target, sessions, options(kex, 1_000));
  const [java] = await descendantsNamed('java');
  const sshdPid = await sshd.listenerPid();
  const oursSessions = (await poolTunnels(bench, CONCURRENCY)).map(({ id, port }) => ({
    username: id,
    bindAddr: 'localhost',
    bindPort: port,
  }));
  const sshdSessions = Array.from({ length: CONCURRENCY }, () => ({
    username: sshd.user,
    bindAddr: 'localhost',
    bindPort: 0,
  }));
  const gatewayCpu = () => treeCpuSeconds(stack.pid);
  const sshdCpu = () => treeCpuSeconds(sshdPid);
  const idle = { ours: await idleCpuPerMs(gatewayCpu), openssh: await idleCpuPerMs(sshdCpu) };
  const ours = async (kex: string) => {
    bench.log(`login key exchange: our gateway, ${kex}`);
    await warmUp(bench.targets.ours, oursSessions, kex);
    const run = await metered(
      {
        gateway: gatewayCpu,
        ...(java ? { 'DynamoDB Local': () => treeCpuSeconds(java) } : {}),
      },
      () => clients.loginRate(bench.targets.ours, oursSessions, options(kex)),
    );
    return { ...run, cpuMs: netCpuMs(run.cpuMsPerLogin.gateway ?? Number.NaN, run.steps[0], idle.ours) };
  };
  const theirs = async (kex: string) => {
    bench.log(`login key exchange: sshd, ${kex}`);
    await warmUp(bench.targets.openssh, sshdSessions, kex);
    const run = await metered({ sshd: sshdCpu }, () =>
      clients.loginRate(bench.targets.openssh, sshdSessions, options(kex)),
    );
    return { ...run, cpuMs: netCpuMs(run.cpuMsPerLogin.sshd ?? Number.NaN, run.steps[0], idle.openssh) };
  };
  const results = {
    ours: { [CURVE]: await ours(CURVE), [SNTRUP]: await ours(SNTRUP), [MLKEM]: await ours(MLKEM) },
    // OpenSSH 9.2's sshd has no ML-KEM.
    openssh: { [CURVE]: await theirs(CURVE), [SNTRUP]: await theirs(SNTRUP) },
  };
  const failures = [...Object.values(results.ours), ...Object.values(results.openssh)].flatMap((r) =>
    r.steps.flatMap((step) => step.errors),
  );
  if (failures.length > 0) throw new Error(`logins failed: ${failures.slice(0, 3).join('; ')}`);
  const perSession = (cpu: Record<string, { cpuMs: number; steps: { completed: number }[] }>) =>
    Object.entries(cpu)
      .map(([kex, r]) => `${kex} ${r.cpuMs.toFixed(1)} ms (${r.steps[0]?.completed ?? 0} logins)`)
      .join(', ');
  const figure: Figure = {
    id: 'login.cpu.pq',
    label: 'Login with sntrup761x25519: server CPU per session',
    unit: 'CPU ms',
    ours: results.ours[SNTRUP].cpuMs,
    openssh: results.openssh[SNTRUP].cpuMs,
    note:
      `${CONCURRENCY} concurrent ssh2 login loops for ${stepMs / 1000} s per method after a warm-up, key exchange forced, ` +
      `idle CPU taken out (gateway ${idle.ours.toFixed(3)}, sshd ${idle.openssh.toFixed(3)} CPU ms per ms); ` +
      `ours: ${perSession(results.ours)}; sshd: ${perSession(results.openssh)}`,
  };
  const added: Figure = {
    id: 'login.cpu.pq.added',
    label: 'Login: CPU the post-quantum hybrid adds over curve25519',
    unit: 'CPU ms',
    ours: results.ours[SNTRUP].cpuMs - results.ours[CURVE].cpuMs,
    openssh: results.openssh[SNTRUP].cpuMs - results.openssh[CURVE].cpuMs,
    note:
      `sntrup761x25519 minus curve25519, per session, from the runs above; mlkem768x25519 adds ` +
      `${(results.ours[MLKEM].cpuMs - results.ours[CURVE].cpuMs).toFixed(1)} ms on ours`,
  };
  const compute = await serverComputeMs();
  const computeFigure: Figure = {
    id: 'login.kex.compute',
    label: 'Key exchange: server computation per handshake (sntrup761x25519)',
    unit: 'CPU ms',
    ours: compute[SNTRUP] ?? null,
    openssh: null,
    note:
      `the server's step alone (KEM encapsulation, X25519, hash), ${COMPUTE_ROUNDS} rounds in the bench process after a ` +
      `warm-up: ${Object.entries(compute)
        .map(([kex, ms]) => `${kex} ${ms.toFixed(2)} ms`)
        .join(', ')}`,
  };
  return {
    figures: [figure, added, computeFigure],
    details: {
      serverComputeMs: compute,
      idleCpuPerMs: idle,
      cpuMsPerLogin: {
        ours: Object.fromEntries(Object.entries(results.ours).map(([k, r]) => [k, r.cpuMsPerLogin])),
        openssh: Object.fromEntries(Object.entries(results.openssh).map(([k, r]) => [k, r.cpuMsPerLogin])),
      },
    },
  };
}

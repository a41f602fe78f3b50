/**
 * Login rate (target 5): new reverse-tunnel sessions per second (connect, key exchange, public-key
 * login, tcpip-forward granted, disconnect), climbing a ladder of concurrent login loops until the
 * rate stops growing; each step bounded in time. Same ssh2 customers for both servers.
 */
import type { Bench, Measured } from './context';
import type { Figure } from './report';
import { poolTunnels } from './setup';
import { descendantsNamed, treeCpuSeconds } from './support/procfs';
import type { LoginStep } from './support/tunnel-clients-protocol';

function peak(steps: LoginStep[]): LoginStep | undefined {
  return steps.reduce<LoginStep | undefined>(
    (best, s) => (!best || s.perSecond > best.perSecond ? s : best),
    undefined,
  );
}

/** CPU milliseconds per completed login of each metered process over one ladder. */
export async function metered(
  meters: Record<string, () => Promise<number>>,
  run: () => Promise<LoginStep[]>,
): Promise<{ steps: LoginStep[]; cpuMsPerLogin: Record<string, number> }> {
  const before: Record<string, number> = {};
  for (const [name, meter] of Object.entries(meters)) before[name] = await meter();
  const steps = await run();
  const logins = steps.reduce((sum, s) => sum + s.completed, 0);
  const cpuMsPerLogin: Record<string, number> = {};
  for (const [name, meter] of Object.entries(meters)) {
    cpuMsPerLogin[name] = logins > 0 ? (((await meter()) - (before[name] ?? 0)) * 1000) / logins : Number.NaN;
  }
  return { steps, cpuMsPerLogin };
}

const formatCpu = (cpu: Record<string, number>) =>
  Object.entries(cpu)
    .map(([name, ms]) => `${name} ${ms.toFixed(1)} ms`)
    .join(', ');

export async function measureLoginRate(bench: Bench): Promise<Measured> {
  const { settings, clients, sshd, stack } = bench;
  const loops = Math.max(...settings.loginLadder);
  const options = { ladder: settings.loginLadder, stepMs: settings.loginStepMs, timeoutMs: 20_000 };
  const [java] = await descendantsNamed('java');
  const sshdPid = await sshd.listenerPid();
  const client = () => treeCpuSeconds(clients.pid);
  const pool = await poolTunnels(bench, loops);
  bench.log('login rate: our gateway');
  const oursRun = await metered(
    {
      gateway: () => treeCpuSeconds(stack.pid),
      ...(java ? { 'DynamoDB Local': () => treeCpuSeconds(java) } : {}),
      'ssh2 clients': client,
    },
    () =>
      clients.loginRate(
        bench.targets.ours,
        pool.map(({ id, port }) => ({ username: id, bindAddr: 'localhost', bindPort: port })),
        options,
      ),
  );
  bench.log('login rate: sshd');
  const opensshRun = await metered({ sshd: () => treeCpuSeconds(sshdPid), 'ssh2 clients': client }, () =>
    clients.loginRate(
      bench.targets.openssh,
      Array.from({ length: loops }, () => ({ username: sshd.user, bindAddr: 'localhost', bindPort: 0 })),
      options,
    ),
  );
  const ours = oursRun.steps;
  const openssh = opensshRun.steps;
  const o = peak(ours);
  const s = peak(openssh);
  const describe = (step: LoginStep | undefined) =>
    step
      ? `peak at ${step.concurrency} concurrent (login median ${step.medianMs.toFixed(1)} ms, p99 ${step.p99Ms.toFixed(1)} ms, ${step.failed} failed)`
      : 'no step completed';
  const figure: Figure = {
    id: 'login.rate',
    label: 'Login rate (new reverse-tunnel sessions)',
    unit: 'per s',
    ours: o?.perSecond ?? null,
    openssh: s?.perSecond ?? null,
    target: { text: '≥ sshd', met: o && s ? o.perSecond >= s.perSecond : null },
    note:
      `ladder ${settings.loginLadder.join(', ')} concurrent logins, ${settings.loginStepMs / 1000} s each, until the rate ` +
      `stops growing; ours ${describe(o)}; sshd ${describe(s)}; CPU per login: ${formatCpu(oursRun.cpuMsPerLogin)} ` +
      `against ${formatCpu(opensshRun.cpuMsPerLogin)}`,
  };
  const dynamoMs = oursRun.cpuMsPerLogin['DynamoDB Local'];
  const cpuFigure: Figure = {
    id: 'login.cpu',
    label: 'Login: server CPU per session',
    unit: 'CPU ms',
    ours: oursRun.cpuMsPerLogin.gateway ?? null,
    openssh: opensshRun.cpuMsPerLogin.sshd ?? null,
    note:
      'the stack process against all sshd processes, over the whole ladder' +
      (dynamoMs !== undefined
        ? `; DynamoDB Local adds ${dynamoMs.toFixed(1)} ms per session on these same cores (a managed service in AWS; two state writes and a read per session)`
        : ''),
  };
  return {
    figures: [figure, cpuFigure],
    details: {
      ours,
      openssh,
      cpuMsPerLogin: { ours: oursRun.cpuMsPerLogin, openssh: opensshRun.cpuMsPerLogin },
    },
  };
}

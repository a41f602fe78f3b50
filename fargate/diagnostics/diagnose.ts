/**
 * The worker side of `POST /v1/tunnels/{id}/test`: the steps a connection takes, each timed, the
 * first failing one with its status code and hint. Standard tunnels are tested with a fresh
 * session (so a test shows what the next reconnect will meet); reverse tunnels through the
 * customer's live session.
 */

import type { Logger } from '../../shared/logger';
import type { StatusError, TestCheck, TestResult } from '../../shared/schemas';
import { customerNotConnected, hostPort, serviceUnreachable } from '../../shared/status-errors';
import type { GatewayStore } from '../../shared/store/gateway-store';
import type { TunnelRecord, TunnelSecret } from '../../shared/tunnel';
import type { ForwardRegistry } from '../reverse/forward-registry';
import {
  type BastionConnection,
  type BastionConnectOptions,
  type ConnectStage,
  connectToBastion,
  TunnelFailure,
} from '../standard/bastion-connection';
import type { TunnelSecrets } from '../standard/tunnel-secrets';
import { probeService } from './probes';

export interface DiagnoseDeps {
  store: GatewayStore;
  /** Standard tunnels' credentials, through the gateway's secret cache (as the next reconnect reads them). */
  secrets: TunnelSecrets;
  registry: ForwardRegistry;
  connect: BastionConnectOptions;
  workerId: string;
  probeTimeoutMs: number;
  logger: Logger;
}

/** Times consecutive steps: each check's `ms` is the time since the previous one ended. */
class Steps {
  readonly checks: TestCheck[] = [];
  private last = performance.now();

  pass(name: string, message: string): void {
    this.checks.push({ name, ok: true, message, ms: this.lap() });
  }

  fail(name: string, error: StatusError): TestResult {
    this.checks.push({
      name,
      ok: false,
      message: error.message,
      code: error.code,
      hint: error.hint,
      ms: this.lap(),
    });
    return { ok: false, checks: this.checks };
  }

  done(): TestResult {
    return { ok: true, checks: this.checks };
  }

  private lap(): number {
    const now = performance.now();
    const ms = Math.round((now - this.last) * 10) / 10;
    this.last = now;
    return ms;
  }
}

export async function diagnoseTunnel(tunnelId: string, deps: DiagnoseDeps): Promise<TestResult | undefined> {
  const tunnel = await deps.store.getTunnelById(tunnelId);
  if (!tunnel) return undefined;
  return tunnel.type === 'reverse' ? diagnoseReverse(tunnel, deps) : diagnoseStandard(tunnel, deps);
}

async function diagnoseReverse(tunnel: TunnelRecord, deps: DiagnoseDeps): Promise<TestResult> {
  const steps = new Steps();
  const session = deps.registry.sessionOf(tunnel.id);
  if (!session) {
    return steps.fail('customer_connected', customerNotConnected(`no session on worker ${deps.workerId}`));
  }
  steps.pass(
    'customer_connected',
    `customer session from ${session.source} on worker ${deps.workerId} since ${session.connectedAt}`,
  );
  const service = hostPort(tunnel.service.host, tunnel.service.port);
  let channel: Awaited<ReturnType<typeof session.open>>;
  try {
    channel = await session.open({ ip: '127.0.0.1', port: 0 });
  } catch (err) {
    return steps.fail(
      'channel',
      serviceUnreachable(service, (err as Error).message.replace(/^\(SSH\) /, '')),
    );
  }
  steps.pass('channel', `the customer's ssh opened a connection to ${service}`);
  const probe = await probeService(channel, tunnel.service.port, deps.probeTimeoutMs);
  if (!probe.ok) return steps.fail('probe', serviceUnreachable(service, probe.message));
  steps.pass('probe', probe.message);
  return steps.done();
}

/** Which step a connection failure belongs to, given the stages it got through. */
function failedStep(code: StatusError['code'], reached: Set<ConnectStage>): string {
  if (code === 'ssh_dns_failed' || code === 'ssh_host_forbidden') return 'resolve';
  if (code === 'auth_failed') return 'auth';
  if (code === 'host_key_mismatch') return 'ssh_handshake';
  if (!reached.has('resolved')) return 'resolve';
  if (!reached.has('tcp')) return 'tcp';
  if (!reached.has('handshake')) return 'ssh_handshake';
  return 'auth';
}

/**
 * The tunnel's record was just read, so a rotation it shows misses the cache; a refusal of cached
 * credentials reads them again once and, when they changed, tests again with them (a rotation the
 * store has before the record), so the test never reports a refusal of keys no longer current.
 */
async function diagnoseStandard(tunnel: TunnelRecord, deps: DiagnoseDeps): Promise<TestResult> {
  const read = await deps.secrets.read(tunnel);
  const result = await testStandard(tunnel, read.secret, deps);
  if (result.checks.at(-1)?.code !== 'auth_failed') return result;
  const fresher = await deps.secrets.recheck(tunnel, read, deps.logger);
  return fresher ? testStandard(tunnel, fresher.secret, deps) : result;
}

async function testStandard(
  tunnel: TunnelRecord,
  secret: TunnelSecret,
  deps: DiagnoseDeps,
): Promise<TestResult> {
  const steps = new Steps();
  const ssh = tunnel.ssh;
  if (!ssh) throw new Error(`standard tunnel ${tunnel.id} has no ssh settings`);
  const target = hostPort(ssh.host, ssh.port);
  const reached = new Set<ConnectStage>();
  const messages: Record<ConnectStage, [string, string]> = {
    resolved: ['resolve', `${ssh.host} resolves to an allowed address`],
    tcp: ['tcp', `TCP connection to ${target} accepted`],
    handshake: ['ssh_handshake', 'SSH handshake done; host key checked'],
    authenticated: ['auth', `authenticated as ${ssh.user}`],
  };
  let conn: BastionConnection;
  try {
    conn = await connectToBastion(ssh, secret, {
      ...deps.connect,
      onProgress: (stage) => {
        reached.add(stage);
        const [name, message] = messages[stage];
        steps.pass(name, message);
      },
    });
  } catch (err) {
    if (!(err instanceof TunnelFailure)) throw err;
    return steps.fail(failedStep(err.status.code, reached), err.status);
  }
  try {
    const service = hostPort(tunnel.service.host, tunnel.service.port);
    let channel: Awaited<ReturnType<BastionConnection['forward']>>;
    try {
      channel = await conn.forward(tunnel.service, { ip: '127.0.0.1', port: 0 });
    } catch (err) {
      if (!(err instanceof TunnelFailure)) throw err;
      return steps.fail('channel', err.status);
    }
    steps.pass('channel', `the bastion opened a connection to ${service}`);
    const probe = await probeService(channel, tunnel.service.port, deps.probeTimeoutMs);
    if (!probe.ok) return steps.fail('probe', serviceUnreachable(service, probe.message));
    steps.pass('probe', probe.message);
    return steps.done();
  } finally {
    conn.close();
  }
}

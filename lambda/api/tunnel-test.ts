/**
 * `POST /v1/tunnels/{id}/test`: the API's own checks (configuration, which worker holds the
 * tunnel), then the worker's step-by-step checks through its control endpoint.
 */
import type { WorkerControl } from '../../shared/control';
import type { StatusError, TestCheck, TestResult } from '../../shared/schemas';
import { customerNotConnected, hostPort } from '../../shared/status-errors';
import type { TunnelRecord } from '../../shared/tunnel';
import { type ReachableWorker, type WorkerLookupDeps, workerLookup } from './tunnel-owner';

export interface TunnelTestDeps extends WorkerLookupDeps {
  control: WorkerControl;
}

const noWorker = (detail: string): StatusError => ({
  code: 'worker_lost',
  message: `no gateway worker can run the test: ${detail}`,
  hint: 'The gateway service is down or restarting; if this lasts, on-call has been paged.',
});

export async function testTunnel(tunnel: TunnelRecord, deps: TunnelTestDeps): Promise<TestResult> {
  let last = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = Math.round((now - last) * 10) / 10;
    last = now;
    return ms;
  };
  const fail = (checks: TestCheck[], name: string, error: StatusError): TestResult => ({
    ok: false,
    checks: [
      ...checks,
      { name, ok: false, message: error.message, code: error.code, hint: error.hint, ms: lap() },
    ],
  });

  const service = hostPort(tunnel.service.host, tunnel.service.port);
  if (!tunnel.enabled) {
    return {
      ok: false,
      checks: [
        {
          name: 'configured',
          ok: false,
          message: 'the tunnel is disabled',
          hint: 'PATCH the tunnel with {"enabled": true} to turn it on.',
          ms: lap(),
        },
      ],
    };
  }
  const configured: TestCheck = {
    name: 'configured',
    ok: true,
    message:
      tunnel.type === 'reverse'
        ? `reverse tunnel to ${service}, customer key ${tunnel.publicKeyFingerprint}`
        : `standard tunnel via ${tunnel.ssh?.user}@${tunnel.ssh ? hostPort(tunnel.ssh.host, tunnel.ssh.port) : '?'} to ${service}`,
    ms: lap(),
  };

  const workers = workerLookup(deps);
  let worker: ReachableWorker | undefined = await workers.owner(tunnel.id);
  if (!worker && tunnel.type === 'reverse') {
    return fail(
      [configured],
      'customer_connected',
      customerNotConnected('no gateway worker holds a customer session'),
    );
  }
  if (!worker) {
    // Any live worker can test a standard tunnel: it makes a connection of its own.
    worker = await workers.anyWorker();
    if (!worker) return fail([configured], 'gateway', noWorker('no worker has sent a heartbeat recently'));
  }

  try {
    const remote = await deps.control.testTunnel(worker.controlUrl, tunnel.id);
    return { ok: remote.ok, checks: [configured, ...remote.checks] };
  } catch (err) {
    return fail(
      [configured],
      'gateway',
      noWorker(`worker ${worker.workerId} did not answer (${(err as Error).message})`),
    );
  }
}

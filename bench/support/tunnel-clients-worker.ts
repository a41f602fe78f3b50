/**
 * The bench's ssh2 customers, as a process of their own (so their memory and CPU are not the
 * gateway's, and thousands of them fit where thousands of `ssh` processes would not): each logs in
 * with public-key auth and holds one reverse forward (`tcpip-forward`), as `ssh -N -R` does.
 * Driven over IPC by `tunnel-clients.ts`; exits when its parent goes away.
 */
import ssh2, { type KexAlgorithm, type Client as SshClient } from 'ssh2';
// Registers the post-quantum hybrids with this process's ssh2, for logins that ask for them.
import '../../fargate/pq-kex/post-quantum-kex';
import { median, percentile } from './stats';
import {
  type ForwardSession,
  type LoginStep,
  type OpenResult,
  type Request,
  RequestSchema,
  type SshTarget,
} from './tunnel-clients-protocol';

const { Client } = ssh2;
/** Like the customer command's ServerAliveInterval=15 / ServerAliveCountMax=3. */
const KEEPALIVE_MS = 15_000;
const MAX_ERRORS_KEPT = 5;

const groups = new Map<string, SshClient[]>();

/** Logs in and asks for the forward; resolves with the client once the forward is granted. */
function openForward(
  target: SshTarget,
  session: ForwardSession,
  timeoutMs: number,
  kex?: string[],
): Promise<SshClient> {
  const hostKey = Buffer.from(target.hostKey, 'base64');
  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no forward within ${timeoutMs} ms`)), timeoutMs);
    client.on('error', fail);
    client.once('close', () => fail(new Error('connection closed before the forward was granted')));
    // Nothing connects through these tunnels; refuse anything that does.
    client.on('tcp connection', (_info, _accept, rejectConn) => rejectConn());
    client.once('ready', () => {
      client.forwardIn(session.bindAddr, session.bindPort, (err) => {
        if (err) {
          fail(err);
          return;
        }
        settled = true;
        clearTimeout(timer);
        resolve(client);
      });
    });
    client.connect({
      host: target.host,
      port: target.port,
      username: session.username,
      privateKey: target.privateKey,
      hostVerifier: (key: Buffer) => key.equals(hostKey),
      readyTimeout: timeoutMs,
      keepaliveInterval: KEEPALIVE_MS,
      keepaliveCountMax: 3,
      ...(kex ? { algorithms: { kex: kex as KexAlgorithm[] } } : {}),
    });
  });
}

function closeClient(client: SshClient, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.destroy();
      resolve();
    }, timeoutMs);
    client.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    client.end();
  });
}

async function open(request: Extract<Request, { type: 'open' }>): Promise<OpenResult> {
  const started = performance.now();
  const clients = groups.get(request.group) ?? [];
  groups.set(request.group, clients);
  const errors: string[] = [];
  let failed = 0;
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < request.sessions.length; i = next++) {
      const session = request.sessions[i];
      if (!session) continue;
      try {
        const client = await openForward(request.target, session, request.timeoutMs);
        // Idle from now on; a late error (keepalive timeout) must not crash this process.
        client.on('error', () => {});
        clients.push(client);
      } catch (err) {
        failed++;
        if (errors.length < MAX_ERRORS_KEPT) errors.push(`${session.username}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: request.concurrency }, worker));
  return { opened: request.sessions.length - failed, failed, errors, ms: performance.now() - started };
}

async function close(request: Extract<Request, { type: 'close' }>): Promise<{ closed: number }> {
  const clients = groups.get(request.group) ?? [];
  groups.delete(request.group);
  await Promise.all(clients.map((client) => closeClient(client, request.timeoutMs)));
  return { closed: clients.length };
}

/**
 * Logins per second with `c` loops at once, for each `c` of the ladder: each loop logs in, gets
 * its forward granted, disconnects and starts over, for `stepMs`. Stops climbing once a step no
 * longer beats the best rate by 5 % (saturation).
 */
async function loginRate(request: Extract<Request, { type: 'login-rate' }>): Promise<LoginStep[]> {
  const steps: LoginStep[] = [];
  let best = 0;
  let flat = 0;
  for (const concurrency of request.ladder) {
    if (concurrency > request.sessions.length) break;
    const latencies: number[] = [];
    const errors: string[] = [];
    let failed = 0;
    const started = performance.now();
    const deadline = started + request.stepMs;
    const loop = async (session: ForwardSession) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          const client = await openForward(request.target, session, request.timeoutMs, request.kex);
          latencies.push(performance.now() - t0);
          await closeClient(client, request.timeoutMs);
        } catch (err) {
          failed++;
          if (errors.length < MAX_ERRORS_KEPT) errors.push((err as Error).message);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    };
    await Promise.all(request.sessions.slice(0, concurrency).map(loop));
    const ms = performance.now() - started;
    const perSecond = latencies.length / (ms / 1000);
    steps.push({
      concurrency,
      completed: latencies.length,
      failed,
      ms,
      perSecond,
      medianMs: median(latencies),
      p99Ms: percentile(latencies, 99),
      errors,
    });
    if (perSecond > best * 1.05) {
      best = perSecond;
      flat = 0;
    } else if (++flat >= 2) break;
  }
  return steps;
}

async function handle(raw: unknown): Promise<void> {
  const parsed = RequestSchema.safeParse(raw);
  if (!parsed.success) {
    process.send?.({ id: -1, ok: false, error: `bad request: ${parsed.error.message}` });
    return;
  }
  const request = parsed.data;
  try {
    const result =
      request.type === 'open'
        ? await open(request)
        : request.type === 'close'
          ? await close(request)
          : await loginRate(request);
    process.send?.({ id: request.id, ok: true, result });
  } catch (err) {
    process.send?.({ id: request.id, ok: false, error: (err as Error).message });
  }
}

process.on('message', (message) => void handle(message));
// The IPC channel closes when the bench exits, however it exits: do not outlive it.
process.on('disconnect', () => process.exit(0));
process.send?.({ id: 0, ok: true, result: 'ready' });

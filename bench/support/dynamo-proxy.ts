/**
 * A counting HTTP proxy in front of DynamoDB Local: the stack talks to it as its DynamoDB
 * endpoint, and every request is recorded with its operation (from `X-Amz-Target`) and time, so
 * a measurement can count what reached the database in a window without touching product code.
 * A test can also cut it (DynamoDB gone: connections refused, or never answered) and restore it.
 */
import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Operations that write (what DESIGN's "writes do not grow with the number of tunnels" is about). */
export const WRITE_OPERATIONS = new Set([
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchWriteItem',
  'TransactWriteItems',
]);

/** Recorded requests are bounded; the oldest half is dropped when full (windows are recent). */
const MAX_EVENTS = 500_000;

export interface DynamoEvent {
  at: number;
  operation: string;
}

export interface CountingProxy {
  endpoint: string;
  /** Requests since `from` (Date.now() ms), up to `to`, counted by operation. */
  countsBetween(from: number, to?: number): Record<string, number>;
  /** Date.now() of the newest request of one of `operations`, or 0. */
  lastOf(operations: ReadonlySet<string>): number;
  /**
   * DynamoDB becomes unreachable: `refuse` closes the port and every open connection (as when
   * DynamoDB Local is killed: ECONNREFUSED, ECONNRESET); `blackhole` keeps accepting but never
   * answers (as a network that drops packets).
   */
  cut(mode: 'refuse' | 'blackhole'): Promise<void>;
  /** Reachable again, on the same port; requests held by a blackhole are dropped. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startCountingProxy(upstream: string): Promise<CountingProxy> {
  const target = new URL(upstream);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  let events: DynamoEvent[] = [];
  let cutMode: 'refuse' | 'blackhole' | undefined;
  const held = new Set<ServerResponse<IncomingMessage>>();
  const server = createServer((req, res) => {
    if (cutMode === 'blackhole') {
      held.add(res);
      res.once('close', () => held.delete(res));
      return;
    }
    const header = req.headers['x-amz-target'];
    const operation = (Array.isArray(header) ? header[0] : header)?.split('.').pop() ?? 'unknown';
    if (events.length >= MAX_EVENTS) events = events.slice(MAX_EVENTS / 2);
    events.push({ at: Date.now(), operation });
    const upstreamReq = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy: ${err.message}`);
    });
    req.pipe(upstreamReq);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    countsBetween(from, to = Number.POSITIVE_INFINITY) {
      const counts: Record<string, number> = {};
      for (const event of events) {
        if (event.at < from || event.at > to) continue;
        counts[event.operation] = (counts[event.operation] ?? 0) + 1;
      }
      return counts;
    },
    lastOf(operations) {
      for (let i = events.length - 1; i >= 0; i--) {
        const event = events[i];
        if (event && operations.has(event.operation)) return event.at;
      }
      return 0;
    },
    async cut(mode) {
      if (cutMode) throw new Error(`the proxy is already cut (${cutMode})`);
      cutMode = mode;
      if (mode === 'refuse') {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
      }
    },
    async restore() {
      const mode = cutMode;
      cutMode = undefined;
      if (mode === 'refuse') await listen();
      for (const res of held) res.destroy();
      held.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of held) res.destroy();
        if (!server.listening) {
          agent.destroy();
          resolve();
          return;
        }
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

/** Sum of the write operations in `counts`. */
export function writesIn(counts: Record<string, number>): number {
  let total = 0;
  for (const [operation, n] of Object.entries(counts)) if (WRITE_OPERATIONS.has(operation)) total += n;
  return total;
}

/**
 * Waits for the next burst of `operation` requests (at least `burst` within a second) to pass (a
 * second without one), or `timeoutMs`. The stack's status sweep reads every tunnel's status items
 * in BatchGetItem pages, and DynamoDB Local spends seconds of CPU on it at 2,000 tunnels: right after
 * a sweep, most of a sweep interval is free of that load. Resolves with how long it waited.
 */
export async function afterBurstOf(
  proxy: CountingProxy,
  operation: string,
  burst: number,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  let seen = false;
  while (Date.now() - started < timeoutMs) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lastSecond = proxy.countsBetween(Date.now() - 1_000)[operation] ?? 0;
    if (!seen) seen = lastSecond >= burst;
    else if (lastSecond === 0) break;
  }
  return Date.now() - started;
}

/**
 * A counting HTTP proxy in front of DynamoDB Local: the stack talks to it as its DynamoDB
 * endpoint, and every request is recorded with its operation (from `X-Amz-Target`) and time, so
 * a measurement can count what reached the database in a window without touching product code.
 * Metering (the bench) also records what each request cost, in request units and items
 * (dynamo-metering.ts): the proxy adds `ReturnConsumedCapacity: TOTAL` to data requests, which
 * only adds a field to their answers. A test can also cut it (DynamoDB gone: connections refused,
 * or never answered) and restore it.
 */
import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import {
  isJsonObject,
  type JsonObject,
  type Metered,
  meter,
  WRITE_OPERATIONS,
  withCapacityRequested,
} from './dynamo-metering';

export { READ_OPERATIONS, WRITE_OPERATIONS } from './dynamo-metering';

/** Recorded requests are bounded; the oldest half is dropped when full (windows are recent). */
const MAX_EVENTS = 500_000;
/** DynamoDB takes requests up to 16 MB and answers up to 16 MB; anything larger is not metered. */
const MAX_METERED_BODY = 20 * 1024 * 1024;

export interface DynamoEvent {
  at: number;
  operation: string;
  /** With metering: what it cost, once answered. */
  metered?: Metered;
  /** With metering: the answer has not come (or could not be read) yet. */
  pending?: boolean;
}

/** What reached DynamoDB in a window, in the units it bills and in items. */
export interface DynamoUsage {
  /** Requests by operation. */
  requests: Record<string, number>;
  readUnits: number;
  writeUnits: number;
  itemsRead: number;
  itemsWritten: number;
  /** Writes refused by their condition, whose units are estimated (dynamo-metering.ts). */
  estimatedWrites: number;
  /** Reads DynamoDB Local reported below what DynamoDB bills at least, counted at that floor. */
  raisedReads: number;
  /** Reads and writes whose answer carried no units (not metered, unreadable, or still pending). */
  unmetered: number;
}

export interface ProxyOptions {
  /** Meter every data request (the bench); off, bodies pass untouched and only requests are counted. */
  meter?: boolean;
}

export interface CountingProxy {
  endpoint: string;
  /** Requests since `from` (Date.now() ms), up to `to`, counted by operation. */
  countsBetween(from: number, to?: number): Record<string, number>;
  /** With metering: units and items of the requests since `from`, up to `to`. */
  usageBetween(from: number, to?: number): DynamoUsage;
  /** Resolves once every request made up to `to` has its answer metered, or after `timeoutMs`. */
  answered(to: number, timeoutMs: number): Promise<void>;
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

export async function startCountingProxy(
  upstream: string,
  options: ProxyOptions = {},
): Promise<CountingProxy> {
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
    const event: DynamoEvent = { at: Date.now(), operation };
    events.push(event);
    if (!options.meter) {
      forward(req, res, undefined, undefined);
      return;
    }
    event.pending = true;
    readBody(req, MAX_METERED_BODY).then(
      (body) => {
        const parsed = parseObject(body);
        const sent = parsed ? withCapacityRequested(operation, parsed) : undefined;
        const out = sent && sent !== parsed ? Buffer.from(JSON.stringify(sent)) : body;
        forward(req, res, out, (status, answer) => {
          event.metered = meter(operation, sent ?? {}, status, answer);
          event.pending = false;
        });
      },
      (err: unknown) => {
        event.pending = false;
        if (!res.headersSent) res.writeHead(413, { 'content-type': 'text/plain' });
        res.end(`proxy: ${err instanceof Error ? err.message : 'request body unreadable'}`);
      },
    );
  });

  /**
   * Sends the request on (its body as read, or piped when `body` is undefined) and the answer
   * back; with `onAnswer`, also hands it the answer's status and parsed body once it has ended.
   */
  function forward(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer | undefined,
    onAnswer: ((status: number, answer: JsonObject | undefined) => void) | undefined,
  ): void {
    let told = false;
    const tell = (status: number, answer: JsonObject | undefined) => {
      if (told || !onAnswer) return;
      told = true;
      onAnswer(status, answer);
    };
    const headers = { ...req.headers };
    if (body) {
      delete headers['transfer-encoding'];
      headers['content-length'] = String(body.length);
    }
    const upstreamReq = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent },
      (upstreamRes) => {
        const status = upstreamRes.statusCode ?? 502;
        res.writeHead(status, upstreamRes.headers);
        if (onAnswer) {
          const chunks: Buffer[] = [];
          let size = 0;
          upstreamRes.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size <= MAX_METERED_BODY) chunks.push(chunk);
          });
          upstreamRes.once('close', () => tell(status, undefined)); // cut short: not metered
          upstreamRes.once('end', () => {
            const raw = size <= MAX_METERED_BODY ? Buffer.concat(chunks) : undefined;
            const gzipped = upstreamRes.headers['content-encoding'] === 'gzip';
            let answer: JsonObject | undefined;
            try {
              answer = raw ? parseObject(gzipped ? gunzipSync(raw) : raw) : undefined;
            } catch {
              answer = undefined;
            }
            tell(status, answer);
          });
        }
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on('error', (err) => {
      tell(502, undefined);
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy: ${err.message}`);
    });
    if (body) upstreamReq.end(body);
    else req.pipe(upstreamReq);
  }
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
    usageBetween(from, to = Number.POSITIVE_INFINITY) {
      const usage: DynamoUsage = {
        requests: {},
        readUnits: 0,
        writeUnits: 0,
        itemsRead: 0,
        itemsWritten: 0,
        estimatedWrites: 0,
        raisedReads: 0,
        unmetered: 0,
      };
      for (const event of events) {
        if (event.at < from || event.at > to) continue;
        usage.requests[event.operation] = (usage.requests[event.operation] ?? 0) + 1;
        const metered = event.metered;
        if (!metered) {
          if (event.pending !== undefined) usage.unmetered++;
          continue;
        }
        if (metered.kind === 'other') continue;
        if (metered.units === null) usage.unmetered++;
        if (metered.estimated) usage.estimatedWrites++;
        if (metered.raised) usage.raisedReads++;
        if (metered.kind === 'read') {
          usage.readUnits += metered.units ?? 0;
          usage.itemsRead += metered.items;
        } else {
          usage.writeUnits += metered.units ?? 0;
          usage.itemsWritten += metered.items;
        }
      }
      return usage;
    },
    async answered(to, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      const waiting = () => events.some((event) => event.at <= to && event.pending === true);
      while (waiting() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
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

/** The body of a request; rejects past `max` bytes (more than DynamoDB itself takes). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) chunks.push(chunk);
      else req.destroy(new Error(`request body over ${max} bytes`));
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function parseObject(raw: Buffer): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(raw.toString('utf8'));
    return isJsonObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Sum of the write operations in `counts`. */
export function writesIn(counts: Record<string, number>): number {
  let total = 0;
  for (const [operation, n] of Object.entries(counts)) if (WRITE_OPERATIONS.has(operation)) total += n;
  return total;
}

/**
 * Waits until writes reaching DynamoDB fall to `quietPerSecond` or fewer a second (over the last
 * two seconds), or `timeoutMs`; resolves with how long it waited. After thousands of tunnels
 * disconnect, their state writes and recorded transitions take a while on a busy machine.
 */
export async function afterWritesSettle(
  proxy: CountingProxy,
  quietPerSecond: number,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    if (Date.now() - started < 2_000) continue;
    if (writesIn(proxy.countsBetween(Date.now() - 2_000)) <= 2 * quietPerSecond) break;
  }
  return Date.now() - started;
}

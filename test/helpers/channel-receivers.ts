/**
 * The receivers of alert channels, as local HTTP servers on OS-assigned ports that check what the
 * real ones check and answer as they do:
 * - a Standard Webhooks endpoint that verifies each request with the `standardwebhooks` library
 *   (signature and the 5-minute timestamp tolerance) before it parses the body;
 * - PagerDuty's Events API v2: `routing_key`, `event_action`, `dedup_key`, and for a trigger
 *   `payload.summary`/`source`/`severity`; 202 `{"status":"success",...}`, or 400 with `errors`;
 * - a Slack incoming webhook: a JSON object with a non-empty `text` (and `blocks`, if any, an
 *   array of objects with a `type`); 200 `ok`, or 400 `invalid_payload`.
 * Each records every request and can stop listening, come back on the same port, or answer with
 * an error status, to play a receiver that is down.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { closeServer, listenOnLoopback } from './loopback-server';
import { waitFor } from './wait-for';

export interface ChannelRequest {
  at: number;
  headers: IncomingHttpHeaders;
  raw: string;
  /** The body as the receiver understood it, when it accepted it as well-formed. */
  // biome-ignore lint/suspicious/noExplicitAny: receivers hold the JSON of three different APIs
  body?: any;
  /** Why the receiver rejected it, when it did for its content (not for `answerWith`). */
  rejected?: string;
  answered: number;
}

export interface ChannelReceiver {
  url: string;
  readonly requests: ChannelRequest[];
  /** Accepted requests (2xx). */
  accepted(): ChannelRequest[];
  waitForAccepted(
    count: number,
    timeoutMs: number,
    filter?: (r: ChannelRequest) => boolean,
  ): Promise<ChannelRequest[]>;
  /** The status accepted requests get from now on (the real receiver's unless told). */
  answerWith(status: number | undefined): void;
  stopListening(): Promise<void>;
  resumeListening(): Promise<void>;
  close(): Promise<void>;
}

type Judge = (
  raw: string,
  headers: IncomingHttpHeaders,
) => { ok: true; body: unknown } | { ok: false; why: string; status: number };

async function startReceiver(
  judge: Judge,
  ok: { status: number; body: (parsed: unknown) => string },
  path: string,
): Promise<ChannelReceiver> {
  const requests: ChannelRequest[] = [];
  let override: number | undefined;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const verdict =
        req.method === 'POST'
          ? judge(raw, req.headers)
          : { ok: false as const, why: 'not a POST', status: 405 };
      const entry: ChannelRequest = { at: Date.now(), headers: req.headers, raw, answered: 0 };
      if (verdict.ok) {
        entry.body = verdict.body;
        entry.answered = override ?? ok.status;
        res
          .writeHead(entry.answered, { 'Content-Type': 'application/json' })
          .end(entry.answered < 300 ? ok.body(verdict.body) : '{"status":"unavailable"}');
      } else {
        entry.rejected = verdict.why;
        entry.answered = verdict.status;
        res.writeHead(verdict.status, { 'Content-Type': 'text/plain' }).end(verdict.why);
      }
      requests.push(entry);
    });
  });
  const port = await listenOnLoopback(server, 0);
  const close = () => closeServer(server);
  const accepted = () => requests.filter((r) => r.answered >= 200 && r.answered < 300);
  return {
    url: `http://127.0.0.1:${port}${path}`,
    requests,
    accepted,
    waitForAccepted: (count, timeoutMs, filter = () => true) =>
      waitFor(
        () => {
          const found = accepted().filter(filter);
          return found.length >= count ? found : undefined;
        },
        timeoutMs,
        { intervalMs: 20, what: `${count} accepted deliveries at ${path}` },
      ),
    answerWith(status) {
      override = status;
    },
    stopListening: close,
    resumeListening: async () => {
      await listenOnLoopback(server, port);
    },
    close,
  };
}

/** A Standard Webhooks receiver; `secret` is read at each request (it is known once the channel exists). */
export function startStandardWebhookReceiver(secret: () => string | undefined): Promise<ChannelReceiver> {
  return startReceiver(
    (raw, headers) => {
      const key = secret();
      if (!key) return { ok: false, why: 'no secret yet', status: 401 };
      try {
        // Verifies the signature and the timestamp (within 5 minutes), then parses.
        const body = new Webhook(key).verify(raw, flatten(headers));
        return { ok: true, body };
      } catch (err) {
        return { ok: false, why: (err as Error).message, status: 401 };
      }
    },
    { status: 200, body: () => '{"received":true}' },
    '/hooks/standard',
  );
}

const SEVERITIES = new Set(['critical', 'error', 'warning', 'info']);

/** PagerDuty's Events API v2 endpoint (`/v2/enqueue`). */
export function startPagerDutyFake(): Promise<ChannelReceiver> {
  return startReceiver(
    (raw) => {
      const problems: string[] = [];
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return {
          ok: false,
          why: '{"status":"invalid event","message":"Event object is invalid"}',
          status: 400,
        };
      }
      const str = (v: unknown) => typeof v === 'string' && v.length > 0;
      if (!str(event.routing_key) || String(event.routing_key).length !== 32)
        problems.push("'routing_key' is invalid");
      if (!['trigger', 'acknowledge', 'resolve'].includes(String(event.event_action)))
        problems.push("'event_action' is invalid");
      if (event.dedup_key !== undefined && (!str(event.dedup_key) || String(event.dedup_key).length > 255))
        problems.push("'dedup_key' is invalid");
      if (event.event_action !== 'trigger' && !str(event.dedup_key)) problems.push("'dedup_key' is required");
      if (event.event_action === 'trigger') {
        const payload = event.payload as Record<string, unknown> | undefined;
        if (!payload || typeof payload !== 'object') problems.push("'payload' is missing");
        else {
          if (!str(payload.summary) || String(payload.summary).length > 1024)
            problems.push("'payload.summary' is invalid");
          if (!str(payload.source)) problems.push("'payload.source' is missing");
          if (!SEVERITIES.has(String(payload.severity))) problems.push("'payload.severity' is invalid");
        }
      }
      if (problems.length > 0) {
        return {
          ok: false,
          why: JSON.stringify({
            status: 'invalid event',
            message: 'Event object is invalid',
            errors: problems,
          }),
          status: 400,
        };
      }
      return { ok: true, body: event };
    },
    {
      status: 202,
      body: (event) =>
        JSON.stringify({
          status: 'success',
          message: 'Event processed',
          dedup_key: (event as { dedup_key?: string }).dedup_key ?? 'generated',
        }),
    },
    '/v2/enqueue',
  );
}

/** A Slack incoming webhook (`/services/T.../B.../...`). */
export function startSlackFake(): Promise<ChannelReceiver> {
  return startReceiver(
    (raw) => {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return { ok: false, why: 'invalid_payload', status: 400 };
      }
      if (typeof message.text !== 'string' || message.text.trim() === '')
        return { ok: false, why: 'no_text', status: 400 };
      const blocks = message.blocks;
      if (
        blocks !== undefined &&
        !(
          Array.isArray(blocks) &&
          blocks.every((b) => b && typeof b === 'object' && typeof b.type === 'string')
        )
      ) {
        return { ok: false, why: 'invalid_blocks', status: 400 };
      }
      return { ok: true, body: message };
    },
    { status: 200, body: () => 'ok' },
    '/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX',
  );
}

function flatten(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value === 'string') out[name] = value;
    else if (Array.isArray(value)) out[name] = value.join(', ');
  }
  return out;
}

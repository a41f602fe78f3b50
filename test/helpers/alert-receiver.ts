/**
 * On-call's side of the alert webhook for end-to-end tests: a real HTTP server on an OS-assigned
 * port that verifies every request's `X-Tunnelkeeper-Signature` with the shared secret before it
 * parses the body (as a receiver should), checks the body against the contract's alert shape, and
 * records each request with its arrival time. It can stop listening and come back on the same
 * port, or answer with an error status, to play a receiver that is down.
 */
import { createServer, type Server } from 'node:http';
import { ALERT_ID_HEADER, SIGNATURE_HEADER, verifySignature } from '../../shared/alerts/webhook-sink';
import { type Alert, AlertSchema, type AlertType, StatusSchema } from '../../shared/schemas';
import { closeServer, listenOnLoopback } from './loopback-server';
import { waitFor } from './wait-for';

export interface ReceivedRequest {
  /** Date.now() once the whole body had arrived. */
  at: number;
  alertId: string | undefined;
  /** The raw body, which the signature covers. */
  raw: string;
  isSignatureValid: boolean;
  /** Why the body is not the contract's alert object, if it is not. */
  shapeError?: string;
  /** The alert, when the signature verified and the shape matched. */
  alert?: Alert;
  /** The HTTP status this receiver answered with. */
  answered: number;
}

export interface AlertFilter {
  tunnelId?: string;
  type?: AlertType;
}

export interface AlertReceiver {
  url: string;
  /** Every request, in arrival order, whatever it was answered. */
  readonly requests: ReceivedRequest[];
  /** Requests answered 2xx (verified and well-formed), optionally of one tunnel and type. */
  delivered(filter?: AlertFilter): ReceivedRequest[];
  /** Requests of one tunnel (any answer). */
  requestsFor(tunnelId: string): ReceivedRequest[];
  /** Waits until at least `count` matching alerts were delivered; returns them. */
  waitForDelivered(filter: AlertFilter, count: number, timeoutMs: number): Promise<ReceivedRequest[]>;
  /** The status answered to verified, well-formed alerts from now on (200 unless told). */
  answerWith(status: number): void;
  /** Closes the listening socket (and open connections): senders get ECONNREFUSED. */
  stopListening(): Promise<void>;
  /** Listens again on the same port. */
  resumeListening(): Promise<void>;
  close(): Promise<void>;
}

const ALERT_KEYS = ['at', 'status', 'tunnel', 'type'];
const TUNNEL_KEYS = ['id', 'name', 'workspaceId'];

/** Exactly `{"type", "tunnel": {"id", "name", "workspaceId"}, "status", "at"}`, nothing more. */
export function contractShapeError(raw: string): string | undefined {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return 'body is not JSON';
  }
  const parsed = AlertSchema.safeParse(json);
  if (!parsed.success) return `not an alert: ${parsed.error.message}`;
  const keys = Object.keys(json as object).sort();
  if (keys.join() !== ALERT_KEYS.join()) return `alert keys ${keys.join()}`;
  const tunnelKeys = Object.keys((json as { tunnel: object }).tunnel).sort();
  if (tunnelKeys.join() !== TUNNEL_KEYS.join()) return `tunnel keys ${tunnelKeys.join()}`;
  const status = StatusSchema.strict().safeParse((json as { status: unknown }).status);
  if (!status.success) return `status: ${status.error.message}`;
  if (Number.isNaN(Date.parse(parsed.data.at))) return `at ${parsed.data.at} is not a time`;
  return undefined;
}

/**
 * Starts the receiver. `secret` is read at each request, so a test can learn it after the sender
 * started (npm start generates one in DATA_DIR on first start).
 */
export async function startAlertReceiver(secret: () => string | undefined): Promise<AlertReceiver> {
  const requests: ReceivedRequest[] = [];
  let status = 200;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const key = secret();
      const signature = req.headers[SIGNATURE_HEADER.toLowerCase()];
      const isSignatureValid =
        key !== undefined && typeof signature === 'string' && verifySignature(raw, signature, key);
      // Verify first, then parse: an unsigned body is never looked at.
      const shapeError = isSignatureValid ? contractShapeError(raw) : undefined;
      const answered = !isSignatureValid ? 401 : shapeError ? 400 : status;
      const alertId = req.headers[ALERT_ID_HEADER.toLowerCase()];
      const entry: ReceivedRequest = {
        at: Date.now(),
        alertId: typeof alertId === 'string' ? alertId : undefined,
        raw,
        isSignatureValid,
        answered,
      };
      if (shapeError) entry.shapeError = shapeError;
      if (isSignatureValid && !shapeError) entry.alert = AlertSchema.parse(JSON.parse(raw));
      requests.push(entry);
      res.writeHead(answered, { 'Content-Type': 'text/plain' }).end(answered < 300 ? 'ok' : 'no');
    });
  });
  const port = await listenOnLoopback(server, 0);
  const close = () => closeServer(server);

  const matches = (r: ReceivedRequest, filter: AlertFilter) =>
    r.alert !== undefined &&
    (filter.tunnelId === undefined || r.alert.tunnel.id === filter.tunnelId) &&
    (filter.type === undefined || r.alert.type === filter.type);
  const delivered = (filter: AlertFilter = {}) =>
    requests.filter((r) => r.answered >= 200 && r.answered < 300 && matches(r, filter));

  return {
    url: `http://127.0.0.1:${port}/hooks/tunnelkeeper`,
    requests,
    delivered,
    requestsFor: (tunnelId) => requests.filter((r) => r.raw.includes(`"id":"${tunnelId}"`)),
    waitForDelivered: (filter, count, timeoutMs) =>
      waitFor(
        () => {
          const found = delivered(filter);
          return found.length >= count ? found : undefined;
        },
        timeoutMs,
        {
          intervalMs: 20,
          what: `${count} × ${filter.type ?? 'alert'} for ${filter.tunnelId ?? 'any tunnel'}`,
        },
      ),
    answerWith(next) {
      status = next;
    },
    stopListening: close,
    resumeListening: async () => {
      await listenOnLoopback(server, port);
    },
    close,
  };
}

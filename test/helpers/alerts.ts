import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AlertDelivery, AlertSink } from '../../shared/alerts/alert-sink';
import { AlertDeliveryError } from '../../shared/errors';
import type { Alert } from '../../shared/schemas';

export const sampleAlert = (over: Partial<Alert> = {}): Alert => ({
  type: 'tunnel.down',
  tunnel: { id: 'tun_aaaaaaaaaaaaaaaa', name: 'orders-db', workspaceId: 'ws_1' },
  status: {
    state: 'down',
    since: '2026-01-03T00:00:00.000Z',
    error: { code: 'customer_not_connected', message: 'no session', hint: 'run ssh' },
  },
  at: '2026-01-03T00:02:00.000Z',
  ...over,
});

/** What a receiver does with one request: answer with a status, hang, or cut the connection. */
export type Behaviour = number | 'hang' | 'destroy';

export interface ReceivedRequest {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingHttpHeaders;
  /** The raw body as received (what the signature covers). */
  body: string;
  answered: Behaviour;
}

/**
 * A real webhook receiver on an OS-assigned port. `behave` decides each request's fate; every
 * request is recorded with its raw body.
 */
export async function startReceiver(behave: (n: number) => Behaviour) {
  const requests: ReceivedRequest[] = [];
  const hanging: ServerResponse[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answered = behave(requests.length + 1);
      requests.push({
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        answered,
      });
      if (answered === 'hang') hanging.push(res);
      else if (answered === 'destroy') req.socket.destroy();
      else res.writeHead(answered, { 'Content-Type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/tunnels`,
    requests,
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A sink that records what it was given, failing (retryably unless told) while `failing()` says so. */
export class RecordingSink implements AlertSink {
  readonly sent: AlertDelivery[] = [];
  attempts = 0;
  constructor(
    readonly name = 'record',
    private readonly failing: () => boolean = () => false,
    private readonly retryable = true,
  ) {}

  async send(delivery: AlertDelivery): Promise<void> {
    this.attempts++;
    if (this.failing()) throw new AlertDeliveryError(this.name, delivery.id, this.retryable, 'receiver down');
    this.sent.push(delivery);
  }

  types(): string[] {
    return this.sent.map((d) => `${d.body.type} ${d.body.tunnel.id}`);
  }
}

import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Sleep } from '../../../shared/alerts/retry';
import {
  ALERT_ID_HEADER,
  SIGNATURE_HEADER,
  signBody,
  verifySignature,
  WebhookAlertSink,
} from '../../../shared/alerts/webhook-sink';
import { AlertDeliveryError } from '../../../shared/errors';
import { AlertSchema } from '../../../shared/schemas';
import { type Behaviour, sampleAlert, startReceiver } from '../../helpers/alerts';
import { waitFor } from '../../helpers/wait-for';

const SECRET = 'whsec_test-secret-0123456789';
const ID = 'tunnel.down@2026-01-03T00:00:00.000Z';

type Receiver = Awaited<ReturnType<typeof startReceiver>>;
let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

/** A sleep that returns at once and remembers what it was asked to wait. */
function recordingSleep(): Sleep & { delays: number[] } {
  const delays: number[] = [];
  const sleep = async (ms: number) => {
    delays.push(ms);
  };
  return Object.assign(sleep, { delays });
}

async function deliver(answers: Behaviour[], options: { timeoutMs?: number } = {}) {
  receiver = await startReceiver((n) => answers[Math.min(n, answers.length) - 1] ?? 200);
  const sleep = recordingSleep();
  const sink = new WebhookAlertSink({
    url: receiver.url,
    secret: SECRET,
    sleep,
    random: () => 0.5,
    ...options,
  });
  const outcome = await sink.send({ id: ID, body: sampleAlert() }).then(
    () => 'delivered' as const,
    (err: unknown) => err,
  );
  return { outcome, requests: receiver.requests, delays: sleep.delays };
}

describe('WebhookAlertSink', () => {
  it('POSTs exactly the contract alert, signed with HMAC-SHA256 of the raw body', async () => {
    const { outcome, requests } = await deliver([200]);
    expect(outcome).toBe('delivered');
    expect(requests).toHaveLength(1);
    const [req] = requests;
    expect(req?.method).toBe('POST');
    expect(req?.url).toBe('/hooks/tunnels');
    expect(req?.headers['content-type']).toBe('application/json');
    expect(req?.headers[ALERT_ID_HEADER.toLowerCase()]).toBe(ID);
    const body = req?.body ?? '';
    // Exactly the contract's object: nothing more, in the contract's order.
    expect(AlertSchema.strict().parse(JSON.parse(body))).toEqual(sampleAlert());
    expect(Object.keys(JSON.parse(body))).toEqual(['type', 'tunnel', 'status', 'at']);
    // A receiver verifies with nothing but the secret and the bytes it got.
    const header = req?.headers[SIGNATURE_HEADER.toLowerCase()];
    expect(header).toBe(`sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`);
    expect(verifySignature(body, String(header), SECRET)).toBe(true);
  });

  it.each([
    ['another secret', (b: string, h: string) => verifySignature(b, h, 'whsec_some-other-secret-000')],
    ['a changed body', (b: string, h: string) => verifySignature(b.replace('down', 'up'), h, SECRET)],
    ['no header', (b: string) => verifySignature(b, undefined, SECRET)],
    ['a truncated header', (b: string, h: string) => verifySignature(b, h.slice(0, -1), SECRET)],
  ])('fails verification with %s', (_, verify) => {
    const body = JSON.stringify(sampleAlert());
    expect(verify(body, signBody(body, SECRET))).toBe(false);
  });

  it.each<[string, Behaviour[], number, 'delivered' | 'retryable' | 'final']>([
    ['a 2xx at once', [204], 1, 'delivered'],
    ['a 503, then 200', [503, 200], 2, 'delivered'],
    ['429 twice, then 200', [429, 429, 200], 3, 'delivered'],
    ['a cut connection, then 200', ['destroy', 200], 2, 'delivered'],
    ['500 on every attempt: gives up after 3, retryable later', [500, 500, 500, 200], 3, 'retryable'],
    ['408 every time: retryable later', [408], 3, 'retryable'],
    ['400: the receiver rejects it, no retry', [400, 200], 1, 'final'],
    ['401: a wrong secret at the receiver, no retry', [401, 200], 1, 'final'],
    ['a redirect: never followed with a signed alert', [302, 200], 1, 'final'],
  ])('%s', async (_, answers, attempts, expected) => {
    const { outcome, requests, delays } = await deliver(answers);
    expect(requests).toHaveLength(attempts);
    // Every attempt carries the same bytes and signature.
    expect(new Set(requests.map((r) => r.body)).size).toBe(1);
    expect(new Set(requests.map((r) => r.headers[SIGNATURE_HEADER.toLowerCase()])).size).toBe(1);
    expect(delays).toHaveLength(attempts - 1);
    if (expected === 'delivered') {
      expect(outcome).toBe('delivered');
      return;
    }
    expect(outcome).toBeInstanceOf(AlertDeliveryError);
    expect((outcome as AlertDeliveryError).retryable).toBe(expected === 'retryable');
    expect((outcome as AlertDeliveryError).message).toContain(ID);
  });

  it('backs off exponentially with jitter between attempts', async () => {
    const { delays } = await deliver([503, 503, 503]);
    // Full jitter at random 0.5: half of 500 ms, then half of 1 s.
    expect(delays).toEqual([250, 500]);
  });

  it('gives each attempt its own timeout and says so', async () => {
    const started = performance.now();
    const { outcome, requests } = await deliver(['hang', 'hang', 'hang'], { timeoutMs: 150 });
    expect(requests).toHaveLength(3);
    expect(outcome).toBeInstanceOf(AlertDeliveryError);
    expect((outcome as AlertDeliveryError).retryable).toBe(true);
    expect((outcome as AlertDeliveryError).message).toMatch(/no response within 150 ms/);
    // Three timeouts, not one per attempt forever: bounded.
    expect(performance.now() - started).toBeGreaterThanOrEqual(3 * 150 - 20);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('stops at once when told to stop, without further attempts', async () => {
    receiver = await startReceiver(() => 'hang');
    const sink = new WebhookAlertSink({ url: receiver.url, secret: SECRET, timeoutMs: 10_000 });
    const stop = new AbortController();
    const sending = sink.send({ id: ID, body: sampleAlert(), signal: stop.signal });
    const started = performance.now();
    // Abort once the receiver has the request in hand.
    await waitFor(() => (receiver?.requests.length ?? 0) > 0, 5_000, { what: 'the request at the receiver' });
    stop.abort();
    await expect(sending).rejects.toBeInstanceOf(AlertDeliveryError);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(receiver.requests).toHaveLength(1);
  });

  it('reports an unreachable receiver as retryable, naming the cause', async () => {
    // A refused connection, as fetch reports it (a closed port of ours could be anyone's by now).
    const refused = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }),
    });
    let calls = 0;
    const sink = new WebhookAlertSink({
      url: 'http://127.0.0.1:9/hooks',
      secret: SECRET,
      retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
      fetch: async () => {
        calls++;
        throw refused;
      },
    });
    const err = await sink.send({ id: ID, body: sampleAlert() }).catch((e: unknown) => e);
    expect(calls).toBe(2);
    expect(err).toBeInstanceOf(AlertDeliveryError);
    expect((err as AlertDeliveryError).retryable).toBe(true);
    expect((err as AlertDeliveryError).message).toContain('fetch failed: connect ECONNREFUSED');
  });
});

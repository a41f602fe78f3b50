/**
 * One bounded POST to a customer's URL under the SSRF guard (outbound-url.ts): the connection goes
 * to the very address that was checked (the name is resolved once, in our `lookup`), redirects are
 * never followed (a 3xx is an answer like any other), the whole exchange has a deadline, and at
 * most `maxResponseBytes` of the answer are read.
 */

import type { LookupAddress, LookupOptions } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  allowedAddresses,
  type OutboundPolicy,
  OutboundRefusedError,
  type Resolve,
  systemResolve,
  urlProblem,
} from './outbound-url';

export interface OutboundRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Connection, request and answer together. */
  timeoutMs: number;
  /** The most of the answer's body read (and kept); the rest is dropped with the connection. */
  maxResponseBytes: number;
  /** `undefined`: a trusted destination (the operator's own configuration), not checked. */
  policy: OutboundPolicy | undefined;
  resolve?: Resolve;
  signal?: AbortSignal;
}

export interface OutboundResponse {
  status: number;
  /** The answer's first bytes as text (up to `maxResponseBytes`). */
  body: string;
  ms: number;
}

/** No answer: refused by the policy, unresolvable, unreachable, or too slow. */
export class OutboundFailedError extends Error {
  override name = 'OutboundFailedError';
  constructor(
    message: string,
    readonly isRefused: boolean,
    readonly ms: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export async function postOutbound(req: OutboundRequest): Promise<OutboundResponse> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const problem = req.policy ? urlProblem(req.url, req.policy) : undefined;
  if (problem) throw new OutboundFailedError(`URL refused: ${problem}`, true, 0);
  // Literal addresses never reach `lookup`: urlProblem has checked them.
  const url = new URL(req.url);
  const deadline = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([deadline, req.signal]) : deadline;
  const policy = req.policy;
  const resolve = req.resolve ?? systemResolve;
  let refused: OutboundRefusedError | undefined;
  const lookup = (
    hostname: string,
    options: LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ) => {
    allowedAddresses(hostname, policy ?? { allowPrivate: true }, resolve).then(
      (found) => {
        const first = found[0];
        if (options.all) callback(null, found);
        else if (first) callback(null, first.address, first.family);
        else callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '');
      },
      (err: Error) => {
        if (err instanceof OutboundRefusedError) refused = err;
        callback(err, '');
      },
    );
  };
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  try {
    return await new Promise<OutboundResponse>((resolvePromise, reject) => {
      const request = send(
        url,
        {
          method: 'POST',
          headers: { ...req.headers, 'Content-Length': String(Buffer.byteLength(req.body)) },
          lookup,
          signal,
          // One exchange per connection: nothing pooled outlives the send.
          agent: false,
        },
        (res) => {
          readCapped(res, req.maxResponseBytes).then(
            (body) => resolvePromise({ status: res.statusCode ?? 0, body, ms: elapsed() }),
            reject,
          );
        },
      );
      request.on('error', reject);
      request.end(req.body);
    });
  } catch (err) {
    if (refused) throw new OutboundFailedError(refused.message, true, elapsed(), { cause: err });
    const why = deadline.aborted
      ? `no answer within ${req.timeoutMs} ms`
      : req.signal?.aborted
        ? 'stopped'
        : describe(err);
    throw new OutboundFailedError(why, false, elapsed(), { cause: err });
  }
}

/** Reads up to `max` bytes of the body, then drops the connection instead of reading on. */
function readCapped(res: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = () => resolve(Buffer.concat(chunks).subarray(0, max).toString('utf8'));
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= max) {
        res.destroy();
        finish();
      }
    });
    res.on('end', finish);
    res.on('error', (err) => (size >= max ? finish() : reject(err)));
  });
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
}

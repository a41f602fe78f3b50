/**
 * Standard tunnels through the API for end-to-end tests: create one, read the gateway's own items
 * (STATE, LEASE) as the pool wrote them, check the reconnect spacing from the debug log, and run
 * Debian's psql through `connect`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { BatchGetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import ssh2 from 'ssh2';
import { expect, inject } from 'vitest';
import {
  type LeaseItem,
  LeaseItemSchema,
  type TunnelStateItem,
  TunnelStateItemSchema,
} from '../../shared/gateway-items';
import { type Tunnel, TunnelSchema } from '../../shared/schemas';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { keys } from '../../shared/store/table';
import { Bastion } from './bastion';
import type { Cleanups } from './cleanups';
import { type EchoServer, startEchoServer } from './echo';
import { type LogLine, startTestStack, type TestStack, type TestStackOptions } from './gateway-stack';

/** What standard-tunnel tests run against: our stack, a real OpenSSH bastion, a service behind it. */
export interface StandardWorld {
  stack: TestStack;
  bastion: Bastion;
  echo: EchoServer;
  /** Reads the gateway's own items (`gatewayItems`). */
  dynamo: ReturnType<typeof createDynamoClients>;
}

/** Starts each part and registers its teardown with `cleanups` as soon as it runs. */
export async function startStandardWorld(
  cleanups: Cleanups,
  stackOptions: TestStackOptions,
): Promise<StandardWorld> {
  const stack = await startTestStack(stackOptions);
  cleanups.add(() => stack.stop());
  const bastion = await Bastion.start();
  cleanups.add(() => bastion.dispose());
  const echo = await startEchoServer();
  cleanups.add(() => echo.close());
  const dynamo = createDynamoClients({ region: 'us-east-1', endpoint: inject('dynamoEndpoint') });
  cleanups.add(async () => dynamo.client.destroy());
  return { stack, bastion, echo, dynamo };
}

export const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

/** A down tunnel whose error has this code. */
export const isDownWith = (code: string) => (t: Tunnel) =>
  t.status.state === 'down' && t.status.error?.code === code;

export interface StandardBody {
  ssh: { host: string; port: number; user: string; hostKeyFingerprint?: string };
  service: { host: string; port: number };
  auth?: Record<string, unknown>;
}

/** `POST /v1/tunnels` for a standard tunnel through any caller of the API; throws unless 201. */
export async function createStandard(
  api: TestStack['api'],
  body: StandardBody,
): Promise<Tunnel & { authorizedKeysLine: string }> {
  const res = await api('POST', '/v1/tunnels', {
    type: 'standard',
    name: `std-${randomBytes(3).toString('hex')}`,
    ...body,
  });
  if (res.status !== 201)
    throw new Error(`create standard tunnel: ${res.status} ${JSON.stringify(res.json)}`);
  const tunnel = TunnelSchema.parse(res.json);
  if (!tunnel.authorizedKeysLine) throw new Error(`standard tunnel ${tunnel.id} without authorizedKeysLine`);
  requireWellFormedKey(tunnel.publicKey);
  return { ...tunnel, authorizedKeysLine: tunnel.authorizedKeysLine };
}

/**
 * Fails at once, naming the cause, when the API hands out a public key nothing can parse: ssh2's
 * keygen drops a leading zero byte of an ed25519 public key (mscdex/ssh2#1390, #1513), so about one
 * generated key in 256 is 31 bytes long; sshd and ssh2 both reject it and the tunnel never connects.
 */
export function requireWellFormedKey(publicKey: string): void {
  const parsed = ssh2.utils.parseKey(publicKey);
  if (parsed instanceof Error) {
    throw new Error(
      `the API returned a malformed public key (${parsed.message}): ${publicKey}; ` +
        "ssh2's generateKeyPair drops a leading zero byte of ed25519 keys (mscdex/ssh2#1390)",
    );
  }
}

/** The STATE and LEASE items of tunnels, as the workers wrote them (consistent reads). */
export async function gatewayItems(
  doc: DynamoDBDocumentClient,
  tableName: string,
  ids: string[],
): Promise<Map<string, { state?: TunnelStateItem; lease?: LeaseItem }>> {
  const out = new Map<string, { state?: TunnelStateItem; lease?: LeaseItem }>(ids.map((id) => [id, {}]));
  const wanted = ids.flatMap((id) => [keys.tunnelState(id), keys.tunnelLease(id)]);
  for (let i = 0; i < wanted.length; i += 100) {
    let request: Record<string, { Keys: Record<string, unknown>[]; ConsistentRead: boolean }> | undefined = {
      [tableName]: { Keys: wanted.slice(i, i + 100), ConsistentRead: true },
    };
    while (request && Object.keys(request).length > 0) {
      const res = await doc.send(new BatchGetCommand({ RequestItems: request }));
      for (const item of res.Responses?.[tableName] ?? []) {
        const id = String(item.pk).slice('TUNNEL#'.length);
        const entry = out.get(id);
        if (!entry) continue;
        if (item.sk === 'STATE') entry.state = TunnelStateItemSchema.parse(item);
        if (item.sk === 'LEASE') entry.lease = LeaseItemSchema.parse(item);
      }
      request = res.UnprocessedKeys as typeof request;
    }
  }
  return out;
}

/** One reconnect the runner scheduled: when it logged it and how long it meant to wait. */
export interface ScheduledReconnect {
  at: number;
  delayMs: number;
}

/** The `standard tunnel reconnect scheduled` debug lines of one tunnel, oldest first. */
export function scheduledReconnects(logs: LogLine[], tunnelId: string): ScheduledReconnect[] {
  return logs
    .filter((l) => l.msg === 'standard tunnel reconnect scheduled' && l.tunnelId === tunnelId)
    .map((l) => ({ at: Date.parse(String(l.time)), delayMs: Number(l.delayMs) }));
}

/**
 * Exponential backoff as seen from outside: every delay within the cap; the first no longer than
 * the initial one; each at least the one before until the cap is reached (the step doubles while
 * jitter moves a delay only within its own step); the cap's range reached; and the next attempt
 * really waited for the delay it announced.
 */
export function expectGrowingCappedBackoff(
  reconnects: ScheduledReconnect[],
  settings: { initialMs: number; maxMs: number },
): void {
  const delays = reconnects.map((r) => r.delayMs);
  expect(delays.length).toBeGreaterThanOrEqual(6);
  for (const d of delays) {
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThanOrEqual(settings.maxMs);
  }
  expect(delays[0]).toBeLessThanOrEqual(settings.initialMs);
  const capped = delays.findIndex((d) => d >= settings.maxMs / 2);
  expect(capped, `delays ${delays.join(', ')} never reached the cap's range`).toBeGreaterThan(0);
  for (let i = 1; i <= capped; i++) {
    expect(delays[i], `delays ${delays.join(', ')}`).toBeGreaterThanOrEqual(delays[i - 1] ?? 0);
  }
  expect(delays[capped] ?? 0).toBeGreaterThan(2 * (delays[0] ?? 0));
  for (let i = 1; i < reconnects.length; i++) {
    const previous = reconnects[i - 1];
    const current = reconnects[i];
    if (!previous || !current) continue;
    // Log times have millisecond resolution; a timer never fires early.
    expect(current.at - previous.at).toBeGreaterThanOrEqual(previous.delayMs - 1);
  }
}

/** Runs one query with Debian's psql against host:port as `postgres`, killed after `timeoutMs`. */
export function psql(
  host: string,
  port: number,
  query: string,
  timeoutMs = 20_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'psql',
      ['-X', '-A', '-t', '-h', host, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', query],
      { timeout: timeoutMs, env: { PATH: process.env.PATH, PGCONNECT_TIMEOUT: '10', PGSSLMODE: 'disable' } },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** A connection held open through a tunnel to an echo service, checked now and then. */
export interface HeldConnection {
  /** True when a fresh nonce comes back within `timeoutMs` over the same connection. */
  echo(timeoutMs: number): Promise<boolean>;
  close(): void;
}

export async function holdEchoConnection(host: string, port: number): Promise<HeldConnection> {
  const socket = connect({ host, port });
  let received = Buffer.alloc(0);
  let closed = false;
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    wake?.();
  });
  socket.on('error', () => {});
  socket.once('close', () => {
    closed = true;
    wake?.();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return {
    async echo(timeoutMs) {
      if (closed) return false;
      const nonce = randomBytes(32);
      received = Buffer.alloc(0);
      socket.write(nonce);
      const deadline = Date.now() + timeoutMs;
      while (!closed && received.length < nonce.length && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadline - Date.now());
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      return !closed && received.subarray(0, nonce.length).equals(nonce);
    },
    close: () => socket.destroy(),
  };
}

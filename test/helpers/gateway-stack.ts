/**
 * The local stack (API + gateway) in this process, on the run's DynamoDB Local with a table of its
 * own and a temp DATA_DIR, its JSON log lines captured for assertions. For end-to-end tests that
 * drive the API over HTTP and the SSH endpoint with real OpenSSH.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { inject } from 'vitest';
import type { Gateway } from '../../fargate/gateway';
import { startLocalStack } from '../../local/stack';
import { parseEnv } from '../../shared/config';
import { createLogger } from '../../shared/logger';
import { StatusSchema, type Tunnel, TunnelSchema } from '../../shared/schemas';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { apiClient } from './http-api';
import { waitFor } from './wait-for';

export type LogLine = Record<string, unknown> & { msg: string; level: string };

export interface TestStack {
  baseUrl: string;
  apiKey: string;
  /** The operator token (`ADMIN_TOKEN`). */
  adminToken: string;
  /** This stack's table on the run's DynamoDB Local (to read gateway items directly). */
  tableName: string;
  sshPort: number;
  gateway: Gateway;
  /** Every log line so far, parsed. */
  logs: LogLine[];
  /** Calls the API over HTTP with the bootstrap key. */
  api(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{
    status: number;
    // biome-ignore lint/suspicious/noExplicitAny: tests probe response fields of many shapes
    json: any;
  }>;
  /** POST /v1/tunnels for a reverse tunnel; returns the validated tunnel (and `privateKey` if generated). */
  createReverse(service: { host: string; port: number }, publicKey?: string): Promise<Tunnel>;
  getTunnel(id: string): Promise<Tunnel>;
  /** Polls the tunnel until `accept` holds (or fails at the deadline with the last tunnel seen). */
  waitForTunnel(
    id: string,
    accept: (tunnel: Tunnel) => boolean,
    timeoutMs: number,
    /** Adds context to a timeout, such as the customer's ssh output. */
    diagnose?: () => string,
  ): Promise<Tunnel>;
  /** Polls the captured logs for a line matching `predicate`. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine>;
  /** Log lines matching all the given fields. */
  logsWith(fields: Record<string, unknown>): LogLine[];
  stop(): Promise<void>;
}

export interface TestStackOptions {
  /** A range of its own per test file, so parallel files never race for a tunnel port. */
  portRange: string;
  heartbeatIntervalMs?: number;
  keepaliveIntervalMs?: number;
  handshakeTimeoutMs?: number;
  maxChannelsPerTunnel?: number;
  /** Further variables, applied over the ones above (e.g. `RECONNECT_MAX_MS`, `ALLOW_PRIVATE_SSH_HOSTS`). */
  env?: Record<string, string>;
}

export async function startTestStack(options: TestStackOptions): Promise<TestStack> {
  const endpoint = inject('dynamoEndpoint');
  const dataDir = await mkdtemp(join(tmpdir(), 'tk-stack-'));
  const tableName = `test-${randomBytes(6).toString('hex')}`;
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;
  const adminToken = `tka_${randomBytes(24).toString('base64url')}`;
  const logs: LogLine[] = [];
  const logger = createLogger('debug', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      logs.push({ msg: line, level: 'raw' });
    }
  });
  const env = parseEnv({
    HOST: '127.0.0.1',
    PORT: '0',
    SSH_PORT: '0',
    DATA_DIR: dataDir,
    DYNAMODB_ENDPOINT: endpoint,
    TABLE_NAME: tableName,
    BOOTSTRAP_API_KEY: apiKey,
    ADMIN_TOKEN: adminToken,
    TUNNEL_PORT_RANGE: options.portRange,
    HEARTBEAT_INTERVAL_MS: String(options.heartbeatIntervalMs ?? 2_000),
    SSH_KEEPALIVE_INTERVAL_MS: String(options.keepaliveIntervalMs ?? 5_000),
    SSH_HANDSHAKE_TIMEOUT_MS: String(options.handshakeTimeoutMs ?? 10_000),
    MAX_CHANNELS_PER_TUNNEL: String(options.maxChannelsPerTunnel ?? 256),
    LOG_LEVEL: 'debug',
    ...options.env,
  });
  let stack: Awaited<ReturnType<typeof startLocalStack>>;
  try {
    stack = await startLocalStack(env, logger, () => {});
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const baseUrl = `http://127.0.0.1:${stack.apiPort}`;

  const client = apiClient(() => baseUrl, apiKey);
  const api: TestStack['api'] = (method, path, body) => client.call(method, path, body);
  const { getTunnel } = client;

  let lastSeen: unknown;
  return {
    baseUrl,
    apiKey,
    adminToken,
    tableName,
    sshPort: stack.sshPort,
    gateway: stack.gateway,
    logs,
    api,
    async createReverse(service, publicKey) {
      const res = await api('POST', '/v1/tunnels', {
        type: 'reverse',
        name: `e2e-${randomBytes(3).toString('hex')}`,
        service,
        ...(publicKey ? { publicKey } : {}),
      });
      if (res.status !== 201)
        throw new Error(`create reverse tunnel: ${res.status} ${JSON.stringify(res.json)}`);
      return TunnelSchema.parse(res.json);
    },
    getTunnel,
    async waitForTunnel(id, accept, timeoutMs, diagnose) {
      try {
        return await waitFor(
          async () => {
            const tunnel = await getTunnel(id);
            lastSeen = { status: StatusSchema.parse(tunnel.status), connect: tunnel.connect };
            return accept(tunnel) ? tunnel : undefined;
          },
          timeoutMs,
          { intervalMs: 100, what: `tunnel ${id}` },
        );
      } catch (err) {
        const context = diagnose ? `\n${diagnose()}` : '';
        throw new Error(`${(err as Error).message}; last seen ${JSON.stringify(lastSeen)}${context}`);
      }
    },
    waitForLog: (predicate, timeoutMs) =>
      waitFor(() => logs.find(predicate), timeoutMs, { intervalMs: 20, what: 'log line' }),
    logsWith: (fields) =>
      logs.filter((line) => Object.entries(fields).every(([key, value]) => line[key] === value)),
    async stop() {
      try {
        await stack.stop();
      } finally {
        const { client } = createDynamoClients({ region: 'us-east-1', endpoint });
        await client.send(new DeleteTableCommand({ TableName: tableName })).catch(() => {});
        client.destroy();
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * `stack.createReverse`, tried again after a 503 `unavailable`, as the contract tells clients to:
 * on a loaded CI machine DynamoDB Local answers slowly enough for the API to say so.
 */
export async function createReverseWhenAvailable(
  stack: TestStack,
  service: { host: string; port: number },
  publicKey?: string,
  attempts = 4,
): Promise<Tunnel> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await stack.createReverse(service, publicKey);
    } catch (err) {
      if (attempt >= attempts || !(err instanceof Error) || !/: 503 /.test(err.message)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1_000 * attempt));
    }
  }
}

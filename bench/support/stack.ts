/**
 * Our system as the bench runs it: DynamoDB Local behind a counting proxy, and the local stack
 * (`node --import tsx local/main.ts`, what `npm start` runs) as a process of its own, so its RSS
 * is the gateway's (plus the API and sweeper it composes), never the bench's or Java's.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startDynamoDbLocal } from '../../local/dynamodb-local';
import type { PortRange } from '../../shared/config';
import { parsePublicKey } from '../../shared/keys';
import { type Tunnel, TunnelSchema } from '../../shared/schemas';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { DynamoStatusStore } from '../../shared/store/dynamo-status-store';
import { killGroup, type StartedStack, startStack } from '../../test/helpers/local-stack';
import { deleteReverseTunnels, writeReverseTunnels } from './bulk-tunnels';
import type { Cleanup } from './cleanup';
import { type CountingProxy, startCountingProxy } from './dynamo-proxy';
import { descendantsNamed, killIfNamed } from './procfs';

const TABLE_NAME = 'tunnelkeeper-bench';
/** The workspace `npm start` bootstraps with BOOTSTRAP_API_KEY. */
const DEFAULT_WORKSPACE = 'default';

export interface StackOptions {
  /** Below the ephemeral range (32768+), so outgoing connections never hold a tunnel's port. */
  portRange: PortRange;
  /** The bench waits for the sweeper to record new tunnels as up before counting writes. */
  sweepIntervalMs: number;
  openFiles: number;
  /** Further variables for the stack, over the bench's own. */
  env?: Record<string, string>;
}

export interface BenchStack {
  pid: number;
  /** The stack process's open-files limit. */
  openFiles: number;
  sshPort: number;
  api: ApiClient;
  proxy: CountingProxy;
  /** Persisted STATUS items, read straight from DynamoDB Local (not through the counting proxy). */
  persistedStates(ids: string[]): Promise<Map<string, string>>;
  /**
   * Reverse tunnels of the default workspace written straight to the table, the items the API's
   * create writes, in batches (bulk-tunnels.ts): thousands of API calls or transactions would only
   * slow the run and grow the stack's heap before the idle-memory baseline; the API is measured on
   * its own.
   */
  addReverseTunnels(
    count: number,
    service: { host: string; port: number },
    publicKey: string,
  ): Promise<{ id: string; port: number }[]>;
  /** Deletes tunnels `addReverseTunnels` wrote: the items the API's delete deletes. */
  deleteTunnels(tunnels: { id: string; port: number }[]): Promise<void>;
  env: Record<string, string>;
  /** The stack's log lines so far (parsed JSON). */
  logs(): Record<string, unknown>[];
}

const run = promisify(execFile);

export async function startBenchStack(cleanup: Cleanup, options: StackOptions): Promise<BenchStack> {
  const dynamo = await startDynamoDbLocal();
  // Ctrl-C reaches its supervising shell too (our process group), which dies without stopping
  // java (a background job ignores SIGINT): remember java's pid and make sure it is gone after
  // the ordinary stop (steps run newest first).
  const javas = await descendantsNamed('java');
  cleanup.add('DynamoDB Local java', () => killIfNamed(javas, 'java'));
  cleanup.add('DynamoDB Local', () => dynamo.stop());
  const proxy = await startCountingProxy(dynamo.endpoint, { meter: true });
  cleanup.add('DynamoDB counting proxy', () => proxy.close());
  const direct = createDynamoClients({ region: 'us-east-1', endpoint: dynamo.endpoint });
  cleanup.add('DynamoDB client', () => direct.client.destroy());
  const dataDir = await mkdtemp(join(tmpdir(), 'tk-bench-stack-'));
  cleanup.add('stack data dir', () => rm(dataDir, { recursive: true, force: true }));

  const adminToken = `tka_${randomBytes(24).toString('base64url')}`;
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;
  const env = {
    HOST: '127.0.0.1',
    PORT: '0',
    SSH_PORT: '0',
    DATA_DIR: dataDir,
    DYNAMODB_ENDPOINT: proxy.endpoint,
    TABLE_NAME,
    BOOTSTRAP_API_KEY: apiKey,
    ADMIN_TOKEN: adminToken,
    PUBLIC_SSH_HOST: '127.0.0.1',
    TUNNEL_PORT_RANGE: `${options.portRange.from}-${options.portRange.to}`,
    SWEEP_INTERVAL_MS: String(options.sweepIntervalMs),
    LOG_LEVEL: 'info',
    ...options.env,
  };
  let stack: StartedStack | undefined;
  const stopStack = cleanup.add('local stack process', async () => {
    if (!stack) return;
    const started = stack;
    await Promise.race([
      started.stop('SIGTERM', 'group').catch(() => {}),
      new Promise((resolve) => setTimeout(resolve, 12_000)),
    ]);
    killGroup(started.child);
  });
  try {
    stack = await startStack(env, 60_000, 'node');
  } catch (err) {
    await stopStack();
    throw err;
  }
  const pid = stack.child.pid;
  if (pid === undefined) throw new Error('the stack process has no pid');
  // Two sockets per idle tunnel (SSH connection, listener) and more: well past the default 1024.
  await run('prlimit', ['--pid', String(pid), `--nofile=${options.openFiles}:${options.openFiles}`]);
  const listening = await stack.waitForLog((line) => line.msg === 'ssh endpoint listening', 10_000);
  const sshPort = Number(listening.port);
  const statusStore = new DynamoStatusStore(direct.doc, TABLE_NAME);
  /** Batches written so far: names their tunnels apart. */
  let written = 0;
  const lines = stack.lines;
  return {
    pid,
    openFiles: options.openFiles,
    sshPort,
    api: new ApiClient(stack.baseUrl, adminToken, apiKey),
    proxy,
    env,
    logs: () => lines,
    async persistedStates(ids) {
      const states = new Map<string, string>();
      for (let i = 0; i < ids.length; i += 100) {
        const items = await statusStore.getStatusItems(ids.slice(i, i + 100));
        for (const [id, item] of items) if (item.status) states.set(id, item.status.state);
      }
      return states;
    },
    async addReverseTunnels(count, service, publicKey) {
      const key = parsePublicKey(publicKey, 'publicKey');
      return writeReverseTunnels(
        direct.doc,
        TABLE_NAME,
        options.portRange,
        count,
        {
          workspaceId: DEFAULT_WORKSPACE,
          type: 'reverse',
          enabled: true,
          service,
          publicKey: key.publicKey,
          publicKeyFingerprint: key.fingerprint,
        },
        `bench-pool-${++written}`,
      );
    },
    deleteTunnels: (tunnels) => deleteReverseTunnels(direct.doc, TABLE_NAME, DEFAULT_WORKSPACE, tunnels),
  };
}

export interface ApiResponse {
  status: number;
  json: unknown;
  ms: number;
}

/** The public API over HTTP, with one API key per workspace (the rate limit is per workspace). */
export class ApiClient {
  readonly keys: string[];

  constructor(
    readonly baseUrl: string,
    private readonly adminToken: string,
    bootstrapKey: string,
  ) {
    this.keys = [bootstrapKey];
  }

  async call(key: string, method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const started = performance.now();
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    const ms = performance.now() - started;
    return { status: res.status, json: text ? JSON.parse(text) : undefined, ms };
  }

  /** GET /metrics (the operator's Prometheus text). */
  async metricsText(): Promise<string> {
    const res = await fetch(`${this.baseUrl}/metrics`, {
      headers: { Authorization: `Bearer ${this.adminToken}` },
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${text.slice(0, 200)}`);
    return text;
  }

  /** Adds workspaces until there are `count` API keys. */
  async ensureWorkspaces(count: number): Promise<void> {
    while (this.keys.length < count) {
      const res = await this.call(this.adminToken, 'POST', '/v1/admin/workspaces', {
        name: `bench-${this.keys.length}`,
      });
      const apiKey = (res.json as { apiKey?: unknown } | undefined)?.apiKey;
      if (res.status !== 201 || typeof apiKey !== 'string') {
        throw new Error(`create workspace: ${res.status} ${JSON.stringify(res.json)}`);
      }
      this.keys.push(apiKey);
    }
  }

  /** POST /v1/tunnels, retrying a 429 after its Retry-After (a few times). */
  async createTunnel(key: string, body: Record<string, unknown>): Promise<Tunnel> {
    for (let attempt = 1; ; attempt++) {
      const res = await this.call(key, 'POST', '/v1/tunnels', body);
      if (res.status === 201) return TunnelSchema.parse(res.json);
      if (res.status !== 429 || attempt >= 5) {
        throw new Error(`create tunnel: ${res.status} ${JSON.stringify(res.json)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  }
}

/**
 * The Fargate entry point started as the image starts it (issue 6, acceptance 5): the gateway
 * bundle the Dockerfile builds, run with `node`, configured with the environment the stack gives
 * the container, its VPC address from an ECS task metadata endpoint, DynamoDB Local for the table
 * and a local fake of Secrets Manager's JSON protocol (the one AWS service with no emulator here).
 * The API, in this process, creates the tunnel in the same table with the same secrets; a real
 * OpenSSH client runs the customer command and bytes flow through `connect`.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltBundle, buildBundle, REPO_ROOT } from '../../cdk/lib/bundles';
import { createApp } from '../../lambda/api/app';
import { apiDepsFromEnv } from '../../lambda/api/compose';
import { HttpWorkerControl } from '../../lambda/api/worker-control-client';
import { freePort } from '../../local/free-port';
import { issueApiKey } from '../../shared/api-keys';
import { parseEnv } from '../../shared/config';
import { ensureControlToken } from '../../shared/control';
import { ensureHostKey } from '../../shared/host-key';
import { newAdminToken, newApiKey, newWorkspaceId, sha256Hex } from '../../shared/ids';
import { silentLogger } from '../../shared/logger';
import { type Tunnel, TunnelSchema } from '../../shared/schemas';
import { AwsSecretStore } from '../../shared/secrets/aws-secret-store';
import { keys } from '../../shared/store/table';
import { synthTemplate } from '../helpers/cdk';
import { type Customer, customerFor, requireTools, sshKeygen } from '../helpers/customer';
import { createTestTable } from '../helpers/dynamo';
import { type EchoServer, echoRoundTrip, startEchoServer } from '../helpers/echo';
import { FakeSecrets } from '../helpers/secrets-manager-fake';
import { probeOpensshKex } from '../helpers/ssh-kex';
import { waitFor, withTimeout } from '../helpers/wait-for';

type Table = Awaited<ReturnType<typeof createTestTable>>;
type LogLine = Record<string, unknown> & { msg: string };

const MiB = 1024 * 1024;
const REGION = 'eu-west-1';
const CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'AKIAFAKEFAKEFAKEFAKE',
  AWS_SECRET_ACCESS_KEY: 'fake-secret-access-key',
};

/** The container's environment from the synthesized task definition, deploy-time tokens resolved. */
function stackContainerEnvironment(tableName: string): Record<string, string> {
  const { template } = synthTemplate();
  const [task] = Object.values(template.findResources('AWS::ECS::TaskDefinition'));
  const entries: { Name: string; Value: unknown }[] = task?.Properties.ContainerDefinitions[0].Environment;
  const tokens: Record<string, string> = { TABLE_NAME: tableName, AWS_REGION: REGION };
  return Object.fromEntries(
    entries.map(({ Name, Value }) => {
      if (typeof Value === 'string') return [Name, Value];
      const resolved = tokens[Name];
      if (resolved === undefined) throw new Error(`gateway environment: no test value for token ${Name}`);
      return [Name, resolved];
    }),
  );
}

/** ECS task metadata v4 (`GET $ECS_CONTAINER_METADATA_URI_V4/task`), as Fargate's awsvpc serves it. */
async function startTaskMetadata(
  address: string,
): Promise<{ uri: string; requests: number; close(): Promise<void> }> {
  const state = { requests: 0 };
  const server: Server = createServer((req, res) => {
    state.requests++;
    if (req.url !== '/v4/abc/task') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({
        Cluster: 'tunnelkeeper',
        Containers: [{ Name: 'gateway', Networks: [{ NetworkMode: 'awsvpc', IPv4Addresses: [address] }] }],
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    uri: `http://127.0.0.1:${port}/v4/abc`,
    get requests() {
      return state.requests;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface GatewayProcess {
  child: ChildProcess;
  logs: LogLine[];
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(msg: string, timeoutMs: number): Promise<LogLine>;
}

/** `node <bundle>` as the image's CMD runs it, its JSON log lines parsed. */
function startGateway(bundle: BuiltBundle, env: Record<string, string>): GatewayProcess {
  const child = spawn(process.execPath, [bundle.file], {
    cwd: bundle.outdir,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let pending = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) logs.push(JSON.parse(line) as LogLine);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    logs,
    stderr: () => stderr,
    exited,
    waitForLog: (msg, timeoutMs) =>
      waitFor(() => logs.find((l) => l.msg === msg), timeoutMs, {
        what: `gateway log "${msg}" (stderr: ${stderr})`,
      }),
  };
}

describe('the Fargate entry point with AWS-style configuration', () => {
  let table: Table;
  let bundle: BuiltBundle;
  const secrets = new FakeSecrets();
  let secretsManager: Awaited<ReturnType<FakeSecrets['serve']>>;
  let metadata: Awaited<ReturnType<typeof startTaskMetadata>>;
  let echo: EchoServer;
  let gatewayEnv: Record<string, string>;
  let gateway: GatewayProcess | undefined;
  const customers: Customer[] = [];

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel');
    table = await createTestTable();
    bundle = await buildBundle(
      'gateway',
      join(REPO_ROOT, 'node_modules/.cache/tunnelkeeper-test-bundles/gateway-main'),
    );
    secretsManager = await secrets.serve();
    metadata = await startTaskMetadata('127.0.0.1');
    echo = await startEchoServer();
    gatewayEnv = {
      ...stackContainerEnvironment(table.tableName),
      ...CREDENTIALS,
      // Where this machine differs from a task: local endpoints, free ports, faster timing.
      DYNAMODB_ENDPOINT: table.endpoint,
      SECRETS_MANAGER_ENDPOINT: secretsManager.endpoint,
      ECS_CONTAINER_METADATA_URI_V4: metadata.uri,
      SSH_PORT: '0',
      HEALTH_PORT: String(await freePort()),
      CONTROL_PORT: '0',
      TUNNEL_PORT_RANGE: '32000-32099',
      HEARTBEAT_INTERVAL_MS: '1000',
      SSH_KEEPALIVE_INTERVAL_MS: '5000',
      LOG_LEVEL: 'debug',
    };
  }, 120_000);

  afterAll(async () => {
    await Promise.all(customers.map((c) => c.dispose()));
    if (gateway && gateway.child.exitCode === null && gateway.child.pid) gateway.child.kill('SIGKILL');
    await Promise.all([secretsManager?.close(), metadata?.close(), echo?.close()]);
    if (bundle) await rm(bundle.outdir, { recursive: true, force: true });
    await table?.drop();
  });

  /** The API app over the same table and Secrets Manager, as the API Lambda composes it. */
  async function api(sshPort: number): Promise<{ app: OpenAPIHono; apiKey: string }> {
    const env = parseEnv(gatewayEnv);
    const store = new AwsSecretStore(
      new SecretsManagerClient({
        region: REGION,
        endpoint: secretsManager.endpoint,
        credentials: {
          accessKeyId: CREDENTIALS.AWS_ACCESS_KEY_ID,
          secretAccessKey: CREDENTIALS.AWS_SECRET_ACCESS_KEY,
        },
      }),
      env.SECRET_PREFIX,
    );
    const [hostKey, controlToken] = await Promise.all([ensureHostKey(store), ensureControlToken(store)]);
    const app = createApp(
      apiDepsFromEnv(
        { ...env, PUBLIC_SSH_HOST: '127.0.0.1' },
        {
          doc: table.doc,
          secrets: store,
          logger: silentLogger,
          adminTokenHash: sha256Hex(newAdminToken()),
          hostPublicKey: hostKey.publicKey,
          sshPort,
          workerControl: new HttpWorkerControl(controlToken),
        },
      ),
    );
    const apiKey = newApiKey();
    await table.store.createWorkspace(
      { id: newWorkspaceId(), name: 'acme', createdAt: new Date().toISOString() },
      issueApiKey(new Date().toISOString(), apiKey).record,
    );
    return { app, apiKey };
  }

  it('starts, serves a reverse tunnel from real OpenSSH, and stops cleanly on SIGTERM', async () => {
    gateway = startGateway(bundle, gatewayEnv);
    const ready = await gateway.waitForLog('gateway ready', 30_000);
    // The address came from the task metadata, as on Fargate.
    expect(ready.address).toBe('127.0.0.1');
    expect(metadata.requests).toBeGreaterThan(0);
    // The bundle found ssh2's native helper beside it (the gateway warns at start when it did not).
    expect(gateway.logs.filter((l) => /native crypto helper/.test(l.msg))).toEqual([]);
    // And its key crypto worker (crypto-worker.mjs beside main.mjs): the gateway does not start without it.
    expect(gateway.logs.find((l) => l.msg === 'worker pool started')).toMatchObject({
      component: 'key crypto pool',
      workers: expect.any(Number),
    });
    const sshPort = Number(ready.sshPort);
    expect(sshPort).toBeGreaterThan(0);
    // The bundle carries the post-quantum key exchange (patched ssh2, liboqs' WebAssembly inside).
    const kexProbe = await probeOpensshKex({ port: sshPort });
    expect(kexProbe.kex, kexProbe.output).toBe('sntrup761x25519-sha512');

    const health = await fetch(`http://127.0.0.1:${gatewayEnv.HEALTH_PORT}/`);
    expect(health.status).toBe(200);
    const { workerId } = (await health.json()) as { workerId: string };
    // It created the host key and the control token in "Secrets Manager" under the stack's prefix.
    expect([...secrets.values.keys()].sort()).toEqual([
      'tunnelkeeper/gateway/control-token',
      'tunnelkeeper/gateway/host-key',
    ]);
    const beat = await table.doc.send(
      new GetCommand({ TableName: table.tableName, Key: keys.worker(workerId) }),
    );
    expect(beat.Item).toMatchObject({
      address: '127.0.0.1',
      controlUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
    });

    const { app, apiKey } = await api(sshPort);
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await app.request(path, {
        method,
        headers: {
          Authorization: `Bearer ${apiKey}`,
          ...(body ? { 'Content-Type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, json: await res.json() };
    };
    const key = await sshKeygen('ed25519');
    const created = await call('POST', '/v1/tunnels', {
      type: 'reverse',
      name: 'warehouse',
      service: { host: '127.0.0.1', port: echo.port },
      publicKey: key.publicKey,
    });
    expect(created.status).toBe(201);
    const tunnel = TunnelSchema.parse(created.json);
    if (!tunnel.reverse) throw new Error('no reverse block');

    // The customer trusts the host key line the API published: the gateway serves that same key.
    const customer = await customerFor(tunnel, key.privateKey);
    customers.push(customer);
    const ssh = customer.start(tunnel.reverse.commands.ssh);
    const up = await waitFor(
      async () => {
        const current = TunnelSchema.parse((await call('GET', `/v1/tunnels/${tunnel.id}`)).json);
        return current.status.state === 'up' && current.connect ? current : undefined;
      },
      20_000,
      { what: `tunnel up (ssh stderr: ${ssh.stderr()})` },
    );
    expect(up.connect).toEqual({ host: '127.0.0.1', port: tunnel.reverse.remotePort });

    const trip = await echoRoundTrip(up.connect?.host ?? '', up.connect?.port ?? 0, 4 * MiB, 30_000);
    expect({ bytes: trip.receivedBytes, sha: trip.receivedSha256 }).toEqual({
      bytes: 4 * MiB,
      sha: trip.sentSha256,
    });

    // What the port's connect load balancer asks (cdk/lib/connect.ts): this task serves that port.
    const portHealth = (port: number) => fetch(`http://127.0.0.1:${gatewayEnv.HEALTH_PORT}/ports/${port}`);
    expect((await portHealth(tunnel.reverse.remotePort)).status).toBe(200);
    expect((await portHealth(tunnel.reverse.remotePort + 1)).status).toBe(503);

    // The test route reaches this worker's control endpoint with the token both share.
    const tested = await call('POST', `/v1/tunnels/${tunnel.id}/test`);
    expect(tested.status).toBe(200);
    expect(
      (tested.json as { checks: { name: string; ok: boolean }[] }).checks.map((c) => [c.name, c.ok]),
    ).toEqual([
      ['configured', true],
      ['customer_connected', true],
      ['channel', true],
      ['probe', true],
    ]);

    const stopping = Date.now();
    gateway.child.kill('SIGTERM');
    const exit = await withTimeout(gateway.exited, 30_000, 'gateway exit after SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(gateway.logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['shutting down', 'worker pool stopped', 'stopped']),
    );
    console.info(
      `figure: gateway stopped ${Date.now() - stopping} ms after SIGTERM, with a tunnel connected`,
    );
    const after: Tunnel = TunnelSchema.parse((await call('GET', `/v1/tunnels/${tunnel.id}`)).json);
    expect(after.status.state).not.toBe('up');
  });

  it('takes WORKER_ADDRESS over the task metadata when it is set', async () => {
    const requestsBefore = metadata.requests;
    const override = startGateway(bundle, {
      ...gatewayEnv,
      WORKER_ADDRESS: '127.0.0.1',
      HEALTH_PORT: String(await freePort()),
    });
    try {
      const ready = await override.waitForLog('gateway ready', 30_000);
      expect(ready.address).toBe('127.0.0.1');
      expect(metadata.requests).toBe(requestsBefore);
    } finally {
      override.child.kill('SIGTERM');
      await withTimeout(override.exited, 30_000, 'gateway exit');
    }
  });
});

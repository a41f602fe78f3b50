import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../local/free-port';
import { generateKeyPair } from '../../shared/keys';
import {
  EventListSchema,
  StatusSchema,
  TunnelListSchema,
  TunnelSchema,
  WorkspaceCreatedSchema,
} from '../../shared/schemas';
import { killGroup, type StartedStack, startStack } from '../helpers/local-stack';

const run = promisify(execFile);

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

describe('npm start: the local stack over HTTP', () => {
  let dataDir: string;
  let stack: StartedStack | undefined;
  let adminToken: string;
  let apiKey: string;
  let sshPort: string;

  const http = async (method: string, path: string, token?: string, body?: unknown) => {
    if (!stack) throw new Error('stack not running');
    const res = await fetch(`${stack.baseUrl}${path}`, {
      method,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tk-start-'));
    sshPort = String(await freePort());
  });
  afterAll(async () => {
    if (stack) killGroup(stack.child);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('serves /healthz within 30 s of a first start and prints the credentials once', async () => {
    const started = Date.now();
    stack = await startStack({ DATA_DIR: dataDir, SSH_PORT: sshPort });
    expect((await http('GET', '/healthz')).json).toEqual({ ok: true });
    expect(Date.now() - started).toBeLessThan(30_000);

    const creds = await stack.waitForLog((l) => typeof l.BOOTSTRAP_API_KEY === 'string', 1000);
    adminToken = String(creds.ADMIN_TOKEN);
    apiKey = String(creds.BOOTSTRAP_API_KEY);
    expect((await readFile(join(dataDir, 'admin-token'), 'utf8')).trim()).toBe(adminToken);
    expect((await stat(join(dataDir, 'admin-token'))).mode & 0o777).toBe(0o600);
    // Every other line is a structured log line: no runtime, engine or SDK warning on the way.
    for (const line of stack.lines)
      expect(line).toMatchObject({ time: expect.any(String), level: expect.any(String) });
    expect(stack.output.filter((line) => !line.startsWith('{'))).toEqual([]);
    // Past the bound, the assertion above says by how much rather than the runner's timeout.
  }, 45_000);

  const state: { reverseId?: string; standardId?: string; workspaceKey?: string; knownHostsLine?: string } =
    {};

  it('answers every route of the contract with its shapes, on DynamoDB Local', async () => {
    const ws = await http('POST', '/v1/admin/workspaces', adminToken, { name: 'acme' });
    expect(ws.status).toBe(201);
    state.workspaceKey = WorkspaceCreatedSchema.strict().parse(ws.json).apiKey;

    const customer = await generateKeyPair('ed25519', 'customer');
    const reverse = await http('POST', '/v1/tunnels', apiKey, {
      type: 'reverse',
      name: 'warehouse',
      service: { host: '127.0.0.1', port: 5432 },
      publicKey: customer.publicKey,
    });
    expect(reverse.status).toBe(201);
    const r = TunnelSchema.strict().parse(reverse.json);
    state.reverseId = r.id;
    state.knownHostsLine = r.reverse?.knownHostsLine;
    expect(r.reverse?.sshHost).toBe('localhost');
    expect(r.reverse?.knownHostsLine).toMatch(/^\[localhost\]:\d+ ssh-ed25519 /);

    const standard = await http('POST', '/v1/tunnels', apiKey, {
      type: 'standard',
      name: 'orders',
      ssh: { host: 'bastion.example.com', user: 'tunnel' },
      service: { host: '10.0.0.5', port: 5432 },
    });
    expect(standard.status).toBe(201);
    state.standardId = TunnelSchema.strict().parse(standard.json).id;

    const list = await http('GET', '/v1/tunnels?limit=10', apiKey);
    expect(
      TunnelListSchema.strict()
        .parse(list.json)
        .items.map((t) => t.id),
    ).toEqual([state.standardId, r.id]);
    expect(TunnelSchema.strict().parse((await http('GET', `/v1/tunnels/${r.id}`, apiKey)).json).id).toBe(
      r.id,
    );

    const patched = await http('PATCH', `/v1/tunnels/${r.id}`, apiKey, { name: 'warehouse-2' });
    expect(TunnelSchema.strict().parse(patched.json).name).toBe('warehouse-2');

    const rotated = await http('POST', `/v1/tunnels/${state.standardId}/rotate-key`, apiKey);
    expect(rotated.status).toBe(200);
    expect(TunnelSchema.strict().parse(rotated.json).publicKey).not.toBe(standard.json.publicKey);

    const status = await http('GET', `/v1/tunnels/${r.id}/status`, apiKey);
    expect(StatusSchema.strict().parse(status.json).state).toBe('pending');
    const etag = status.headers.get('etag') ?? '';
    const cached = await fetch(`${stack?.baseUrl}/v1/tunnels/${r.id}/status`, {
      headers: { Authorization: `Bearer ${apiKey}`, 'If-None-Match': etag },
    });
    expect(cached.status).toBe(304);

    expect(
      EventListSchema.strict().parse((await http('GET', `/v1/tunnels/${r.id}/events`, apiKey)).json),
    ).toEqual({
      items: [],
    });

    const doomed = await http('POST', '/v1/tunnels', apiKey, {
      type: 'reverse',
      name: 'doomed',
      service: { host: '127.0.0.1', port: 1 },
    });
    expect((await http('DELETE', `/v1/tunnels/${doomed.json.id}`, apiKey)).status).toBe(204);
    expect((await http('GET', `/v1/tunnels/${doomed.json.id}`, apiKey)).status).toBe(404);

    const openapi = await http('GET', '/openapi.json');
    expect(openapi.json.openapi).toBe('3.1.0');
  });

  it('stops cleanly on a SIGTERM to npm within 10 s, DynamoDB Local included', async () => {
    if (!stack) throw new Error('stack not running');
    const dynamo = await stack.waitForLog((l) => l.msg === 'dynamodb local started', 1000);
    const dynamoPort = Number(new URL(String(dynamo.endpoint)).port);
    expect(await portOpen(dynamoPort)).toBe(true);
    const { ms, stopped } = await stack.stop('SIGTERM', 'npm');
    expect(stopped).toBe(true);
    expect(ms).toBeLessThan(10_000);
    expect(await portOpen(dynamoPort)).toBe(false);
    // All its output is in: the AWS SDK's warning about Node < 22 (none on 22) came once, not per thread.
    expect(stack.output.filter((l) => l.includes('NodeVersionSupportWarning')).length).toBeLessThanOrEqual(1);
  });

  it('keeps workspaces, keys, tunnels and the host key across a restart on the same DATA_DIR', async () => {
    stack = await startStack({ DATA_DIR: dataDir, SSH_PORT: sshPort });
    expect(stack.lines.some((l) => 'BOOTSTRAP_API_KEY' in l || 'ADMIN_TOKEN' in l)).toBe(false);
    const list = TunnelListSchema.parse((await http('GET', '/v1/tunnels', apiKey)).json);
    expect(list.items.map((t) => t.id)).toEqual([state.standardId, state.reverseId]);
    const reverse = TunnelSchema.parse((await http('GET', `/v1/tunnels/${state.reverseId}`, apiKey)).json);
    expect(reverse.name).toBe('warehouse-2');
    expect(reverse.reverse?.knownHostsLine).toBe(state.knownHostsLine);
    expect((await http('GET', '/v1/tunnels', state.workspaceKey)).json).toEqual({ items: [] });
    expect((await http('POST', '/v1/admin/workspaces', adminToken, { name: 'after restart' })).status).toBe(
      201,
    );

    // The bootstrap key lost: the command npm start printed issues a new one for `default` (run as
    // printed, by a shell); with it the lost one is revoked, and every tunnel is still there.
    const hint = await stack.waitForLog(
      (l) => typeof l.command === 'string' && /api-keys$/.test(l.command),
      1000,
    );
    const issued = JSON.parse((await run('sh', ['-c', String(hint.command)])).stdout);
    expect(issued).toMatchObject({ workspaceId: 'default', apiKey: expect.stringMatching(/^tk_/) });
    const keys = (await http('GET', '/v1/api-keys', issued.apiKey)).json.items as {
      id: string;
      current: boolean;
    }[];
    const lost = keys.find((k) => !k.current);
    if (!lost) throw new Error(`no other key to revoke in ${JSON.stringify(keys)}`);
    expect((await http('DELETE', `/v1/api-keys/${lost.id}`, issued.apiKey)).status).toBe(204);
    expect((await http('GET', '/v1/tunnels', apiKey)).status).toBe(401);
    const kept = TunnelListSchema.parse((await http('GET', '/v1/tunnels', issued.apiKey)).json);
    expect(kept.items.map((t) => t.id)).toEqual([state.standardId, state.reverseId]);
    // Ctrl-C in a terminal: SIGINT to the whole process group, java and its supervising shell included.
    const dynamo = await stack.waitForLog((l) => l.msg === 'dynamodb local started', 1000);
    const dynamoPort = Number(new URL(String(dynamo.endpoint)).port);
    const { ms, stopped } = await stack.stop('SIGINT', 'group');
    expect(stopped).toBe(true);
    expect(ms).toBeLessThan(10_000);
    expect(await portOpen(dynamoPort)).toBe(false);
    // Two processes started (the stack with its DynamoDB Local, then the printed command): on a
    // busy two-core machine that alone has taken 30 s.
  }, 90_000);
});

/**
 * The API Lambda entry end to end: API Gateway HTTP API v2 events in, Lambda results out, over
 * DynamoDB Local and a mocked Secrets Manager (the one AWS service we cannot run here).
 */

import {
  CreateSecretCommand,
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import type { LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';
import { issueApiKey } from '../../../shared/api-keys';
import { newAdminToken, newApiKey, newWorkspaceId } from '../../../shared/ids';
import { generateKeyPair, type KeyPair } from '../../../shared/keys';
import { TunnelSchema } from '../../../shared/schemas';
import { TunnelSecretSchema } from '../../../shared/tunnel';
import { createTestTable } from '../../helpers/dynamo';
import { httpApiEvent as httpEvent } from '../../helpers/lambda-bundle';
import { captureStdout } from '../../helpers/stdout';

type Table = Awaited<ReturnType<typeof createTestTable>>;
type Handler = typeof import('../../../lambda/api/handler')['handler'];

const PREFIX = 'tunnelkeeper/test';
const HOST_KEY_ID = `${PREFIX}/gateway/host-key`;
const ADMIN_TOKEN_ID = `${PREFIX}/admin/token`;
const CONTROL_TOKEN_ID = `${PREFIX}/gateway/control-token`;
const CONTROL_TOKEN = 'tkc_control-token-for-these-tests';
const PUBLIC_SSH_HOST = 'tunnels.example.com';

const reverseBody = { type: 'reverse', name: 'warehouse', service: { host: 'db.internal', port: 5432 } };
const standardBody = {
  type: 'standard',
  name: 'orders-db',
  ssh: { host: 'bastion.example.com', user: 'tunnel' },
  service: { host: '10.1.2.3', port: 5432 },
};

const sm = mockClient(SecretsManagerClient);

function awsError(name: string, httpStatusCode: number, message: string): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode } });
}

const notFound = () =>
  new ResourceNotFoundException({
    message: "Secrets Manager can't find the specified secret.",
    $metadata: {},
  });

/** A fresh module graph: the next invocation is a cold start that reads the environment again. */
async function coldStart(): Promise<Handler> {
  vi.resetModules();
  return (await import('../../../lambda/api/handler')).handler;
}

/** Invokes the handler and decodes the JSON body. */
async function invoke(handler: Handler, event: LambdaEvent) {
  const result = await handler(event);
  expect(result.isBase64Encoded).toBe(false);
  return {
    statusCode: result.statusCode,
    headers: result.headers ?? {},
    body: result.body,
    // biome-ignore lint/suspicious/noExplicitAny: tests probe response fields of many shapes
    json: result.body ? (JSON.parse(result.body) as any) : undefined,
  };
}

function secretIdsRead(): string[] {
  return sm
    .commandCalls(GetSecretValueCommand)
    .map((call) => call.args[0].input.SecretId ?? '')
    .sort();
}

describe('API Lambda handler', () => {
  let table: Table;
  let hostKey: KeyPair;
  let stdout: MockInstance | undefined;
  const adminToken = newAdminToken();
  /** What the handler wrote to stdout: its JSON log lines. */
  const logs: string[] = [];
  // biome-ignore lint/suspicious/noExplicitAny: log records carry fields of many shapes
  const logRecords = (): any[] => logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));

  /** The two secrets every cold start reads; any CreateSecret succeeds. */
  const stubSecrets = () => {
    sm.on(GetSecretValueCommand, { SecretId: HOST_KEY_ID })
      .resolves({
        Name: HOST_KEY_ID,
        SecretString: JSON.stringify({ privateKey: hostKey.privateKey, publicKey: hostKey.publicKey }),
      })
      .on(GetSecretValueCommand, { SecretId: ADMIN_TOKEN_ID })
      // Operators paste tokens with a trailing newline; the handler trims it.
      .resolves({ Name: ADMIN_TOKEN_ID, SecretString: `${adminToken}\n` })
      .on(GetSecretValueCommand, { SecretId: CONTROL_TOKEN_ID })
      .resolves({ Name: CONTROL_TOKEN_ID, SecretString: CONTROL_TOKEN })
      .on(CreateSecretCommand)
      .resolves({ ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:x', Name: 'x' });
  };

  const newWorkspace = async () => {
    const apiKey = newApiKey();
    const id = newWorkspaceId();
    await table.store.createWorkspace(
      { id, name: 'acme', createdAt: new Date().toISOString() },
      issueApiKey(new Date().toISOString(), apiKey).record,
    );
    return { id, apiKey };
  };

  beforeAll(async () => {
    table = await createTestTable();
    hostKey = await generateKeyPair('ed25519', 'test-gateway');
    vi.stubEnv('TABLE_NAME', table.tableName);
    vi.stubEnv('DYNAMODB_ENDPOINT', table.endpoint);
    vi.stubEnv('SECRET_PREFIX', PREFIX);
    vi.stubEnv('PUBLIC_SSH_HOST', PUBLIC_SSH_HOST);
    vi.stubEnv('PUBLIC_SSH_PORT', '');
    vi.stubEnv('TUNNEL_BIND_HOST', '');
    vi.stubEnv('TUNNEL_PORT_RANGE', '');
    vi.stubEnv('SSH_KEEPALIVE_INTERVAL_MS', '');
    vi.stubEnv('LOG_LEVEL', 'info');
    vi.stubEnv('AWS_REGION', 'us-east-1');
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIAFAKEFAKEFAKEFAKE');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'fake-secret-access-key');
    stdout = captureStdout(logs);
  });

  afterAll(async () => {
    stdout?.mockRestore();
    vi.unstubAllEnvs();
    sm.restore();
    await table.drop();
  });

  beforeEach(() => {
    sm.reset();
    logs.length = 0;
  });

  describe('warm', () => {
    let handler: Handler;
    let ws: { id: string; apiKey: string };
    beforeAll(async () => {
      sm.reset();
      stubSecrets();
      handler = await coldStart();
      ws = await newWorkspace();
      expect((await invoke(handler, httpEvent('GET', '/healthz'))).json).toEqual({ ok: true });
      expect(secretIdsRead()).toEqual([ADMIN_TOKEN_ID, CONTROL_TOKEN_ID, HOST_KEY_ID]);
      expect(sm.commandCalls(CreateSecretCommand)).toHaveLength(0);
    });

    beforeEach(() => stubSecrets());

    it('reads no secret again once warm', async () => {
      expect((await invoke(handler, httpEvent('GET', '/healthz'))).statusCode).toBe(200);
      expect(sm.calls()).toHaveLength(0);
    });

    it('creates a reverse tunnel (201) with the gateway host key from Secrets Manager, storing no secret', async () => {
      const res = await invoke(
        handler,
        httpEvent('POST', '/v1/tunnels', { token: ws.apiKey, body: reverseBody }),
      );
      expect(res.statusCode).toBe(201);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const t = TunnelSchema.strict().parse(res.json);
      expect(t.type).toBe('reverse');
      expect(t.id).toMatch(/^tun_[a-z2-7]{16}$/);
      expect(t.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
      expect(t.status).toEqual({
        state: 'pending',
        since: t.createdAt,
        uptime: { '24h': null, '7d': null, '30d': null },
      });
      expect(t.connect).toBeNull();
      expect(t.reverse).toMatchObject({ sshHost: PUBLIC_SSH_HOST, sshPort: 22, sshUser: t.id });
      expect(t.reverse?.remotePort).toBeGreaterThanOrEqual(20000);
      expect(t.reverse?.remotePort).toBeLessThanOrEqual(29999);
      expect(t.reverse?.knownHostsLine).toBe(
        `${PUBLIC_SSH_HOST} ${hostKey.publicKey.split(' ').slice(0, 2).join(' ')}`,
      );
      // SSH_KEEPALIVE_INTERVAL_MS defaults to 15000: the commands keep alive every 15 s.
      expect(t.reverse?.commands.ssh).toContain('ServerAliveInterval=15');
      expect(sm.commandCalls(CreateSecretCommand)).toHaveLength(0);
    });

    it('creates a standard tunnel (201) whose credentials go to Secrets Manager under the prefix', async () => {
      const res = await invoke(
        handler,
        httpEvent('POST', '/v1/tunnels', { token: ws.apiKey, body: standardBody }),
      );
      expect(res.statusCode).toBe(201);
      const t = TunnelSchema.strict().parse(res.json);
      expect(t.type).toBe('standard');
      expect(t.ssh).toEqual({ host: 'bastion.example.com', port: 22, user: 'tunnel' });
      expect(t.publicKey).toMatch(/^ssh-ed25519 /);
      expect(t).not.toHaveProperty('privateKey');

      const inputs = sm.commandCalls(CreateSecretCommand).map((call) => call.args[0].input);
      expect(inputs).toHaveLength(1);
      expect(inputs[0]?.Name).toBe(`${PREFIX}/tunnels/${t.id}`);
      const secret = TunnelSecretSchema.parse(JSON.parse(inputs[0]?.SecretString ?? ''));
      expect(secret.keys).toHaveLength(1);
      expect(secret.keys[0]?.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
      expect(secret.keys[0]?.publicKey).toBe(t.publicKey);
      expect(secret.keys[0]?.fingerprint).toBe(t.publicKeyFingerprint);
      expect(res.body).not.toContain(secret.keys[0]?.privateKey);
    });

    it('reads a tunnel back by id (200) and refuses an unknown key (401) and another workspace (404)', async () => {
      const created = await invoke(
        handler,
        httpEvent('POST', '/v1/tunnels', { token: ws.apiKey, body: reverseBody }),
      );
      expect(created.statusCode).toBe(201);
      const id: string = created.json.id;

      const res = await invoke(handler, httpEvent('GET', `/v1/tunnels/${id}`, { token: ws.apiKey }));
      expect(res.statusCode).toBe(200);
      const t = TunnelSchema.strict().parse(res.json);
      expect(t.id).toBe(id);
      expect(t).not.toHaveProperty('privateKey');

      const unknown = await invoke(handler, httpEvent('GET', `/v1/tunnels/${id}`, { token: newApiKey() }));
      expect(unknown.statusCode).toBe(401);
      expect(unknown.json.error.code).toBe('unauthorized');
      expect(unknown.headers['www-authenticate']).toBe('Bearer');

      const other = await newWorkspace();
      const foreign = await invoke(handler, httpEvent('GET', `/v1/tunnels/${id}`, { token: other.apiKey }));
      expect(foreign.statusCode).toBe(404);
      expect(foreign.json.error.code).toBe('not_found');
    });

    it('passes the query string through to list routes', async () => {
      const own = await newWorkspace();
      for (let i = 0; i < 2; i++) {
        const res = await invoke(
          handler,
          httpEvent('POST', '/v1/tunnels', { token: own.apiKey, body: reverseBody }),
        );
        expect(res.statusCode).toBe(201);
      }
      const page = await invoke(
        handler,
        httpEvent('GET', '/v1/tunnels', { token: own.apiKey, query: 'limit=1' }),
      );
      expect(page.statusCode).toBe(200);
      expect(page.json.items).toHaveLength(1);
      expect(page.json.nextCursor).toEqual(expect.any(String));
    });

    it('creates a workspace with the admin token read from Secrets Manager, and refuses any other', async () => {
      const res = await invoke(
        handler,
        httpEvent('POST', '/v1/admin/workspaces', { token: adminToken, body: { name: 'beta corp' } }),
      );
      expect(res.statusCode).toBe(201);
      expect(res.json).toEqual({
        id: expect.stringMatching(/^ws_/),
        name: 'beta corp',
        apiKey: expect.any(String),
      });
      const list = await invoke(handler, httpEvent('GET', '/v1/tunnels', { token: res.json.apiKey }));
      expect(list.statusCode).toBe(200);
      expect(list.json).toEqual({ items: [] });

      const wrong = await invoke(
        handler,
        httpEvent('POST', '/v1/admin/workspaces', { token: newAdminToken(), body: { name: 'x' } }),
      );
      expect(wrong.statusCode).toBe(401);
      expect(wrong.json.error.code).toBe('unauthorized');
    });

    it('answers a Secrets Manager throttle with 503 unavailable and creates nothing', async () => {
      const own = await newWorkspace();
      sm.on(CreateSecretCommand).rejects(awsError('ThrottlingException', 400, 'Rate exceeded'));
      const res = await invoke(
        handler,
        httpEvent('POST', '/v1/tunnels', { token: own.apiKey, body: standardBody }),
      );
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.json).toEqual({ error: { code: 'unavailable', message: expect.any(String) } });
      expect(res.body).not.toMatch(/ThrottlingException|Rate exceeded|\n\s+at |stack/);
      expect(sm.commandCalls(CreateSecretCommand)).toHaveLength(1);

      const list = await invoke(handler, httpEvent('GET', '/v1/tunnels', { token: own.apiKey }));
      expect(list.json).toEqual({ items: [] });
      const warned = logRecords().filter((r) => r.msg === 'secret store throttled');
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ level: 'warn', err: { name: 'SecretThrottledError' } });
    });

    it('answers Secrets Manager AccessDenied with a bare 500 internal_error and logs the cause', async () => {
      const own = await newWorkspace();
      const denial =
        'User: arn:aws:sts::123456789012:assumed-role/api/fn is not authorized to perform: secretsmanager:CreateSecret';
      sm.on(CreateSecretCommand).rejects(awsError('AccessDeniedException', 400, denial));
      const res = await invoke(
        handler,
        httpEvent('POST', '/v1/tunnels', { token: own.apiKey, body: standardBody }),
      );
      expect(res.statusCode).toBe(500);
      expect(res.json).toEqual({ error: { code: 'internal_error', message: expect.any(String) } });
      expect(res.body).not.toMatch(/AccessDenied|arn:aws|not authorized|tunnels\/tun_|\n\s+at |stack/);

      const list = await invoke(handler, httpEvent('GET', '/v1/tunnels', { token: own.apiKey }));
      expect(list.json).toEqual({ items: [] });
      const errors = logRecords().filter((r) => r.level === 'error');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({
        msg: 'unhandled error',
        method: 'POST',
        path: '/v1/tunnels',
        err: { name: 'SecretAccessDeniedError', cause: { name: 'AccessDeniedException', message: denial } },
      });
    });
  });

  describe('cold start', () => {
    it('generates and stores the gateway host key when Secrets Manager has none', async () => {
      sm.on(GetSecretValueCommand)
        .rejects(notFound())
        .on(CreateSecretCommand)
        .resolves({ ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:x', Name: 'x' });
      const handler = await coldStart();
      const ws = await newWorkspace();

      const res = await invoke(
        handler,
        httpEvent('POST', '/v1/tunnels', { token: ws.apiKey, body: reverseBody }),
      );
      expect(res.statusCode).toBe(201);
      expect(secretIdsRead()).toEqual([ADMIN_TOKEN_ID, CONTROL_TOKEN_ID, HOST_KEY_ID]);
      const created = sm.commandCalls(CreateSecretCommand).map((call) => call.args[0].input);
      expect(created.map((input) => input.Name).sort()).toEqual([CONTROL_TOKEN_ID, HOST_KEY_ID]);
      const hostKeyInput = created.find((input) => input.Name === HOST_KEY_ID);
      const stored: { privateKey: string; publicKey: string } = JSON.parse(hostKeyInput?.SecretString ?? '');
      expect(stored.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
      expect(stored.publicKey).toMatch(/^ssh-ed25519 /);
      const t = TunnelSchema.parse(res.json);
      expect(t.reverse?.knownHostsLine).toBe(
        `${PUBLIC_SSH_HOST} ${stored.publicKey.split(' ').slice(0, 2).join(' ')}`,
      );
    });

    it('refuses every admin request when no admin token is stored', async () => {
      sm.on(GetSecretValueCommand, { SecretId: HOST_KEY_ID })
        .resolves({
          SecretString: JSON.stringify({ privateKey: hostKey.privateKey, publicKey: hostKey.publicKey }),
        })
        .on(GetSecretValueCommand, { SecretId: ADMIN_TOKEN_ID })
        .rejects(notFound())
        .on(GetSecretValueCommand, { SecretId: CONTROL_TOKEN_ID })
        .resolves({ SecretString: CONTROL_TOKEN });
      const handler = await coldStart();
      for (const token of [adminToken, '', 'undefined']) {
        const res = await invoke(
          handler,
          httpEvent('POST', '/v1/admin/workspaces', { token, body: { name: 'x' } }),
        );
        expect(res.statusCode).toBe(401);
      }
      expect(sm.commandCalls(CreateSecretCommand)).toHaveLength(0);
    });

    it('retries a cold start whose Secrets Manager read failed on the next invocation, then stays warm', async () => {
      sm.on(GetSecretValueCommand, { SecretId: HOST_KEY_ID })
        .rejectsOnce(awsError('InternalServiceError', 500, 'internal failure'))
        .resolves({
          SecretString: JSON.stringify({ privateKey: hostKey.privateKey, publicKey: hostKey.publicKey }),
        })
        .on(GetSecretValueCommand, { SecretId: ADMIN_TOKEN_ID })
        .resolves({ SecretString: adminToken })
        .on(GetSecretValueCommand, { SecretId: CONTROL_TOKEN_ID })
        .resolves({ SecretString: CONTROL_TOKEN });
      const handler = await coldStart();

      await expect(handler(httpEvent('GET', '/healthz'))).rejects.toMatchObject({
        name: 'SecretStoreUnavailableError',
        secretName: 'gateway/host-key',
      });
      expect(sm.commandCalls(GetSecretValueCommand, { SecretId: HOST_KEY_ID })).toHaveLength(1);

      const retried = await invoke(handler, httpEvent('GET', '/healthz'));
      expect(retried.statusCode).toBe(200);
      expect(sm.commandCalls(GetSecretValueCommand, { SecretId: HOST_KEY_ID })).toHaveLength(2);

      const admin = await invoke(
        handler,
        httpEvent('POST', '/v1/admin/workspaces', { token: adminToken, body: { name: 'after retry' } }),
      );
      expect(admin.statusCode).toBe(201);
      // Three secrets per cold start (host key, admin token, control token), two cold starts, none after.
      expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(6);
    });

    it('fails the cold start with ConfigError naming a bad variable, before any AWS call', async () => {
      vi.stubEnv('TUNNEL_PORT_RANGE', '30000-20000');
      try {
        const handler = await coldStart();
        await expect(handler(httpEvent('GET', '/healthz'))).rejects.toMatchObject({
          name: 'ConfigError',
          message: expect.stringContaining('TUNNEL_PORT_RANGE'),
        });
        expect(sm.calls()).toHaveLength(0);
      } finally {
        vi.stubEnv('TUNNEL_PORT_RANGE', '');
      }
    });
  });
});

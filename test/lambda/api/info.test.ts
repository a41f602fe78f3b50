/**
 * `GET /v1/info` (CONTRACT.md, Extensions) over the app on DynamoDB Local: public, cacheable, the
 * values the rest of the API and the enforcement use (the host key of every reverse tunnel, the
 * configured egress IPs, the quotas that answer 409 and 413), and no secret. What the SSH endpoint
 * really offers is compared with `algorithms` in test/e2e/service-info.test.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BODY_BYTES } from '../../../lambda/api/app';
import { DEFAULT_LIMITS } from '../../../lambda/api/compose';
import { ServiceInfoSchema } from '../../../shared/schemas';
import { OFFERED_ALGORITHMS } from '../../../shared/service-info';
import { createTestApi } from '../../helpers/api';
import { requireTools } from '../../helpers/customer';

type TestApi = Awaited<ReturnType<typeof createTestApi>>;

const run = promisify(execFile);

describe('GET /v1/info', () => {
  let api: TestApi;
  let scratch: string;

  beforeAll(async () => {
    requireTools('ssh-keygen');
    api = await createTestApi();
    scratch = await mkdtemp(join(tmpdir(), 'tk-info-'));
  });
  afterAll(async () => {
    await api.close();
    await rm(scratch, { recursive: true, force: true });
  });

  const info = async (app = api.app, headers: Record<string, string> = {}) => {
    const res = await app.request('/v1/info', { headers });
    const text = await res.text();
    return {
      res,
      text,
      json: res.status === 200 ? ServiceInfoSchema.strict().parse(JSON.parse(text)) : undefined,
    };
  };

  it('answers without credentials, and also with wrong ones, with the endpoint customers dial', async () => {
    const callers: Record<string, string>[] = [{}, { Authorization: 'Bearer tk_not-a-key-anyone-issued' }];
    for (const headers of callers) {
      const { res, json } = await info(api.app, headers);
      expect(res.status).toBe(200);
      expect(res.headers.get('Content-Type')).toMatch(/^application\/json/);
      expect(json?.sshEndpoint).toMatchObject({ host: 'tunnels.example.com', port: 22 });
    }
  });

  it('shows the host key as ssh-keygen reads it, with the known_hosts line every reverse tunnel carries', async () => {
    const { json } = await info();
    const [hostKey, ...others] = json?.sshEndpoint.hostKeys ?? [];
    expect(others).toEqual([]);
    expect(hostKey?.type).toBe('ssh-ed25519');

    // ssh-keygen's own fingerprint of the line a customer appends to known_hosts.
    const knownHosts = join(scratch, 'known_hosts');
    await writeFile(knownHosts, `${hostKey?.knownHostsLine}\n`);
    const { stdout } = await run('ssh-keygen', ['-l', '-f', knownHosts]);
    expect(stdout.trim()).toBe(`256 ${hostKey?.fingerprint} tunnels.example.com (ED25519)`);
    expect(hostKey?.knownHostsLine).toBe(
      `tunnels.example.com ${api.hostKey.publicKey.split(' ').slice(0, 2).join(' ')}`,
    );

    const ws = await api.newWorkspace();
    const created = await api.call('POST', '/v1/tunnels', ws.apiKey, {
      type: 'reverse',
      name: 'warehouse',
      service: { host: '127.0.0.1', port: 5432 },
      publicKey: api.hostKey.publicKey, // any ed25519 line will do as the customer's key
    });
    expect(created.status).toBe(201);
    expect(created.json.reverse.knownHostsLine).toBe(hostKey?.knownHostsLine);
    expect(created.json.reverse.commands.plink).toContain(hostKey?.fingerprint);
  });

  it('caches for five minutes and answers If-None-Match with 304', async () => {
    const first = await info();
    expect(first.res.headers.get('Cache-Control')).toBe('public, max-age=300');
    const tag = first.res.headers.get('ETag');
    expect(tag).toMatch(/^(W\/)?"[^"]+"$/);
    const again = await info(api.app, { 'If-None-Match': tag ?? '' });
    expect(again.res.status).toBe(304);
    expect(again.text).toBe('');
    expect(again.res.headers.get('Cache-Control')).toBe('public, max-age=300');
    expect(again.res.headers.get('ETag')).toBe(tag);
  });

  it('lists no egress IP unless configured, and the configured ones in order', async () => {
    expect((await info()).json?.egressIps).toEqual([]);
    const configured = api.appWith({ env: { EGRESS_IPS: '203.0.113.10, 2001:db8::7,198.51.100.1' } });
    expect((await info(configured)).json?.egressIps).toEqual(['203.0.113.10', '2001:db8::7', '198.51.100.1']);
  });

  it("lists the endpoint's algorithms from the lists it is configured with", async () => {
    const { json } = await info();
    expect(json?.algorithms).toEqual(OFFERED_ALGORITHMS);
    expect(json?.algorithms.kex).toEqual(
      expect.arrayContaining(['mlkem768x25519-sha256', 'curve25519-sha256']),
    );
    expect(json?.algorithms.cipher).toEqual(expect.arrayContaining(['aes128-gcm@openssh.com', 'aes128-ctr']));
  });

  it('states the limits from the configuration that enforces them', async () => {
    const app = api.appWith({
      env: {
        MAX_TUNNELS_PER_WORKSPACE: '1',
        MAX_SESSIONS_PER_TUNNEL: '3',
        MAX_CHANNELS_PER_TUNNEL: '17',
        DATA_IDLE_TIMEOUT_MS: '600000',
        SSH_HANDSHAKE_TIMEOUT_MS: '9000',
      },
      limits: {
        maxApiKeysPerWorkspace: 2,
        perWorkspace: { ratePerSec: 7, burst: 11 },
        unauthenticatedPerSource: DEFAULT_LIMITS.unauthenticatedPerSource,
      },
    });
    const limits = (await info(app)).json?.limits;
    expect(limits).toEqual({
      tunnelsPerWorkspace: 1,
      apiKeysPerWorkspace: 2,
      sessionsPerTunnel: 3,
      connectionsPerTunnel: 17,
      idleConnectionTimeoutMs: 600_000,
      sshHandshakeTimeoutMs: 9_000,
      requestBodyBytes: MAX_BODY_BYTES,
      requestsPerWorkspace: { requestsPerSecond: 7, burst: 11 },
      unauthenticatedRequestsPerSource: { requestsPerSecond: 5, burst: 20 },
    });

    // The API's own quotas answer as stated.
    const ws = await api.newWorkspace();
    const call = async (method: string, path: string, body?: unknown) => {
      const headers: Record<string, string> = { Authorization: `Bearer ${ws.apiKey}` };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const res = await app.request(path, {
        method,
        headers,
        body: typeof body === 'string' || body === undefined ? body : JSON.stringify(body),
      });
      // biome-ignore lint/suspicious/noExplicitAny: error bodies are probed field by field
      const json: any = await res.json().catch(() => undefined);
      return { status: res.status, json };
    };
    const reverse = { type: 'reverse', name: 'one', service: { host: '127.0.0.1', port: 5432 } };
    expect((await call('POST', '/v1/tunnels', reverse)).status).toBe(201);
    const overTunnels = await call('POST', '/v1/tunnels', { ...reverse, name: 'two' });
    expect(overTunnels.status).toBe(409);
    expect(overTunnels.json.error.details).toMatchObject({ max: limits?.tunnelsPerWorkspace });

    expect((await call('POST', '/v1/api-keys')).status).toBe(201);
    expect((await call('POST', '/v1/api-keys')).status).toBe(409);

    const tooBig = await call('POST', '/v1/tunnels', 'x'.repeat((limits?.requestBodyBytes ?? 0) + 1));
    expect(tooBig.status).toBe(413);
  });

  it('carries no secret: no private key, API key or operator token', async () => {
    const { text } = await info(api.appWith({ env: { EGRESS_IPS: '203.0.113.10' } }));
    expect(text).not.toMatch(/PRIVATE KEY|tk_|tka_|b3BlbnNzaC1rZXktdjE/);
    expect(text).not.toContain(api.adminToken);
    expect(text).not.toContain(api.hostKey.privateKey.split('\n')[1]);
  });

  it('is in /openapi.json as getServiceInfo, public, with its schema', async () => {
    const doc = (await api.call('GET', '/openapi.json', undefined)).json;
    const op = doc.paths['/v1/info'].get;
    expect(op).toMatchObject({ operationId: 'getServiceInfo', tags: ['Service'], security: [] });
    expect(Object.keys(op.responses).sort()).toEqual(['200', '304', '500']);
    expect(op.responses['200'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/ServiceInfo',
    });
    expect(Object.keys(doc.components.schemas.ServiceInfo.properties)).toEqual([
      'sshEndpoint',
      'egressIps',
      'algorithms',
      'limits',
    ]);
  });
});

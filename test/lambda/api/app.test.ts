import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceTagOf } from '../../../shared/command-tag';
import { generateKeyPair } from '../../../shared/keys';
import { StatusSchema, TunnelListSchema, TunnelSchema } from '../../../shared/schemas';
import { secretNames } from '../../../shared/secrets/secret-names';
import { keys } from '../../../shared/store/table';
import { TunnelSecretSchema } from '../../../shared/tunnel';
import { createTestApi } from '../../helpers/api';

type Api = Awaited<ReturnType<typeof createTestApi>>;

const reverseBody = { type: 'reverse', name: 'warehouse', service: { host: 'db.internal', port: 5432 } };
const standardBody = {
  type: 'standard',
  name: 'orders-db',
  ssh: { host: 'bastion.example.com', user: 'tunnel' },
  service: { host: '10.1.2.3', port: 5432 },
};

/** An encrypted OpenSSH private key made by ssh-keygen, as a customer would paste it. */
function sshKeygenPrivateKey(passphrase: string): { privateKey: string; publicKey: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tk-key-'));
  try {
    const file = join(dir, 'id');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', '', '-f', file]);
    return { privateKey: readFileSync(file, 'utf8'), publicKey: readFileSync(`${file}.pub`, 'utf8').trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('HTTP API on DynamoDB Local', () => {
  let api: Api;
  let ws: { id: string; apiKey: string };
  beforeAll(async () => {
    api = await createTestApi();
    ws = await api.newWorkspace();
  });
  afterAll(() => api.close());

  it('answers /healthz and describes the tunnel in /openapi.json (openapi.test.ts walks every route)', async () => {
    expect((await api.call('GET', '/healthz', undefined)).json).toEqual({ ok: true });
    const doc = (await api.call('GET', '/openapi.json', undefined)).json;
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.schemas.Tunnel.properties).toHaveProperty('publicKeyFingerprint');
  });

  describe('admin', () => {
    it.each([
      ['no token', undefined],
      ['a wrong token', 'tka_wrong-token-of-some-length'],
      ['an API key', 'API_KEY'],
    ])('refuses %s with 401', async (_, token) => {
      const res = await api.call('POST', '/v1/admin/workspaces', token === 'API_KEY' ? ws.apiKey : token, {
        name: 'x',
      });
      expect(res.status).toBe(401);
      expect(res.json.error.code).toBe('unauthorized');
    });

    it('creates a workspace whose API key works at once', async () => {
      const res = await api.call('POST', '/v1/admin/workspaces', api.adminToken, { name: 'beta corp' });
      expect(res.status).toBe(201);
      expect(res.json).toEqual({
        id: expect.stringMatching(/^ws_/),
        name: 'beta corp',
        apiKey: expect.any(String),
      });
      expect((await api.call('GET', '/v1/tunnels', res.json.apiKey)).json).toEqual({ items: [] });
    });
  });

  describe('tunnels', () => {
    it('creates a reverse tunnel with the customer public key: contract shape, pending, no private key', async () => {
      const customer = await generateKeyPair('ecdsa', 'laptop');
      const res = await api.call('POST', '/v1/tunnels', ws.apiKey, {
        ...reverseBody,
        publicKey: customer.publicKey,
      });
      expect(res.status).toBe(201);
      const t = TunnelSchema.strict().parse(res.json);
      expect(t).not.toHaveProperty('privateKey');
      expect(t.publicKey).toBe(customer.publicKey);
      expect(t.publicKeyFingerprint).toBe(customer.fingerprint);
      expect(t.status).toEqual({
        state: 'pending',
        since: t.createdAt,
        uptime: { '24h': null, '7d': null, '30d': null }, // nothing counts while pending
      });
      expect(t.connect).toBeNull();
      expect(t.ssh).toBeUndefined();
      expect(t.reverse).toMatchObject({ sshHost: 'tunnels.example.com', sshPort: 22, sshUser: t.id });
      expect(t.reverse?.remotePort).toBeGreaterThanOrEqual(20000);
      expect(t.reverse?.knownHostsLine).toBe(
        `tunnels.example.com ${api.hostKey.publicKey.split(' ').slice(0, 2).join(' ')}`,
      );
      expect(t.reverse?.commands.ssh).toContain(
        `-R ${serviceTagOf({ host: 'db.internal', port: 5432 })}:${t.reverse?.remotePort}:db.internal:5432 ${t.id}@tunnels.example.com`,
      );
      expect(t.reverse?.commands.ssh).toContain(`~/.ssh/tunnelkeeper_${t.id}`);
      expect(t.reverse?.commands.systemd).toContain('[Service]');
      expect(t.reverse?.commands.crontab).toMatch(/^@reboot /);
    });

    it('generates a reverse key when none is given and returns the private key once', async () => {
      const res = await api.call('POST', '/v1/tunnels', ws.apiKey, reverseBody);
      expect(res.status).toBe(201);
      expect(res.json.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
      const again = await api.call('GET', `/v1/tunnels/${res.json.id}`, ws.apiKey);
      expect(again.status).toBe(200);
      expect(again.json).not.toHaveProperty('privateKey');
      expect(again.json.publicKey).toBe(res.json.publicKey);
    });

    it.each([
      ['the default (generated ed25519)', undefined, /^ssh-ed25519 /],
      ['generated rsa', { method: 'generated', keyType: 'rsa' }, /^ssh-rsa /],
      ['generated ecdsa', { method: 'generated', keyType: 'ecdsa' }, /^ecdsa-sha2-nistp256 /],
      ['password', { method: 'password', password: 'correct horse battery staple' }, /^ssh-ed25519 /],
    ])('creates a standard tunnel with %s auth', async (_, auth, keyPattern) => {
      const res = await api.call(
        'POST',
        '/v1/tunnels',
        ws.apiKey,
        auth ? { ...standardBody, auth } : standardBody,
      );
      expect(res.status).toBe(201);
      const t = TunnelSchema.strict().parse(res.json);
      expect(t.publicKey).toMatch(keyPattern);
      expect(t.ssh).toEqual({ host: 'bastion.example.com', port: 22, user: 'tunnel' });
      expect(t.authorizedKeysLine).toBe(
        `no-agent-forwarding,no-X11-forwarding,no-pty,command="echo this key only opens a forward to its tunnel service; exit 1",permitopen="10.1.2.3:5432" ${t.publicKey}`,
      );
      expect(t.reverse).toBeUndefined();
      const secret = TunnelSecretSchema.parse(JSON.parse(await api.secrets.get(secretNames.tunnel(t.id))));
      expect(secret.keys[0]?.publicKey).toBe(t.publicKey);
    });

    it('creates a standard tunnel from a customer private key with passphrase', async () => {
      const customer = sshKeygenPrivateKey('open sesame');
      const res = await api.call('POST', '/v1/tunnels', ws.apiKey, {
        ...standardBody,
        auth: { method: 'private_key', privateKey: customer.privateKey, passphrase: 'open sesame' },
      });
      expect(res.status).toBe(201);
      expect(res.json.publicKey).toBe(customer.publicKey);
      const wrong = await api.call('POST', '/v1/tunnels', ws.apiKey, {
        ...standardBody,
        auth: { method: 'private_key', privateKey: customer.privateKey, passphrase: 'nope' },
      });
      expect(wrong.status).toBe(422);
      expect(wrong.json.error.details[0].path).toMatch(/^auth\./);
    });

    it('pins a pre-approved bastion host key fingerprint', async () => {
      const fp = (await generateKeyPair('ed25519', 'bastion')).fingerprint;
      const res = await api.call('POST', '/v1/tunnels', ws.apiKey, {
        ...standardBody,
        ssh: { ...standardBody.ssh, port: 2222, hostKeyFingerprint: fp },
      });
      expect(res.json.ssh).toEqual({
        host: 'bastion.example.com',
        port: 2222,
        user: 'tunnel',
        hostKeyFingerprint: fp,
      });
    });

    it('lists newest first in pages and filters by state', async () => {
      const own = await api.newWorkspace('lister');
      const ids: string[] = [];
      for (let i = 0; i < 3; i++)
        ids.push((await api.call('POST', '/v1/tunnels', own.apiKey, reverseBody)).json.id);
      await api.call('PATCH', `/v1/tunnels/${ids[0]}`, own.apiKey, { enabled: false });

      const first = await api.call('GET', '/v1/tunnels?limit=2', own.apiKey);
      const page1 = TunnelListSchema.parse(first.json);
      expect(page1.items.map((t) => t.id)).toEqual([ids[2], ids[1]]);
      expect(page1.nextCursor).toEqual(expect.any(String));
      const page2 = TunnelListSchema.parse(
        (await api.call('GET', `/v1/tunnels?limit=2&cursor=${page1.nextCursor}`, own.apiKey)).json,
      );
      expect(page2.items.map((t) => t.id)).toEqual([ids[0]]);

      const disabled = (await api.call('GET', '/v1/tunnels?state=disabled', own.apiKey)).json;
      expect(disabled.items.map((t: { id: string }) => t.id)).toEqual([ids[0]]);
      const pending = (await api.call('GET', '/v1/tunnels?state=pending', own.apiKey)).json;
      expect(pending.items).toHaveLength(2);
      const bad = await api.call('GET', '/v1/tunnels?state=sleeping&limit=1000', own.apiKey);
      expect(bad.status).toBe(422);
      expect(bad.json.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['limit', 'state']);
    });

    it('patches name, enabled, service and ssh, merging what is left out', async () => {
      const created = (
        await api.call('POST', '/v1/tunnels', ws.apiKey, {
          ...standardBody,
          ssh: { ...standardBody.ssh, port: 2200, hostKeyFingerprint: `SHA256:${'A'.repeat(43)}` },
        })
      ).json;
      const res = await api.call('PATCH', `/v1/tunnels/${created.id}`, ws.apiKey, {
        name: 'renamed',
        enabled: false,
        service: { port: 6543 },
        ssh: { user: 'ops' },
      });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({
        name: 'renamed',
        enabled: false,
        service: { host: '10.1.2.3', port: 6543 },
        ssh: {
          host: 'bastion.example.com',
          port: 2200,
          user: 'ops',
          hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`,
        },
        status: { state: 'disabled' },
      });
      expect(res.json.authorizedKeysLine).toContain('permitopen="10.1.2.3:6543"');
      expect(res.json.updatedAt > created.updatedAt).toBe(true);

      // Moving to another bastion drops the old host-key pin.
      const moved = await api.call('PATCH', `/v1/tunnels/${created.id}`, ws.apiKey, {
        ssh: { host: 'new.example.com' },
      });
      expect(moved.json.ssh).toEqual({ host: 'new.example.com', port: 2200, user: 'ops' });
    });

    it('refuses ssh changes on a reverse tunnel and empty patches', async () => {
      const id = (await api.call('POST', '/v1/tunnels', ws.apiKey, reverseBody)).json.id;
      const res = await api.call('PATCH', `/v1/tunnels/${id}`, ws.apiKey, { ssh: { host: 'x.example.com' } });
      expect(res.status).toBe(422);
      expect(res.json.error.details).toEqual([
        { path: 'ssh', message: expect.stringMatching(/standard tunnels only/) },
      ]);
      expect((await api.call('PATCH', `/v1/tunnels/${id}`, ws.apiKey, {})).status).toBe(422);
    });

    it('rotates a standard key: new public key, both keys kept until the gateway retires the old', async () => {
      const t = (await api.call('POST', '/v1/tunnels', ws.apiKey, standardBody)).json;
      const res = await api.call('POST', `/v1/tunnels/${t.id}/rotate-key`, ws.apiKey);
      expect(res.status).toBe(200);
      expect(res.json.publicKey).not.toBe(t.publicKey);
      expect(res.json.publicKey).toMatch(/^ssh-ed25519 /);
      expect(res.json.authorizedKeysLine).toContain(res.json.publicKey);
      const secret = TunnelSecretSchema.parse(JSON.parse(await api.secrets.get(secretNames.tunnel(t.id))));
      expect(secret.keys.map((k) => k.publicKey)).toEqual([res.json.publicKey, t.publicKey]);
      const withKey = await api.call('POST', `/v1/tunnels/${t.id}/rotate-key`, ws.apiKey, { publicKey: 'x' });
      expect(withKey.status).toBe(422);
    });

    it('rotates a reverse key to a given public key, or to a generated one returned once', async () => {
      const t = (await api.call('POST', '/v1/tunnels', ws.apiKey, reverseBody)).json;
      const next = await generateKeyPair('ed25519', 'new');
      const res = await api.call('POST', `/v1/tunnels/${t.id}/rotate-key`, ws.apiKey, {
        publicKey: next.publicKey,
      });
      expect(res.json).toMatchObject({ publicKey: next.publicKey, publicKeyFingerprint: next.fingerprint });
      expect(res.json).not.toHaveProperty('privateKey');
      const generated = await api.call('POST', `/v1/tunnels/${t.id}/rotate-key`, ws.apiKey, {});
      expect(generated.json.privateKey).toMatch(/OPENSSH PRIVATE KEY/);
    });

    it('serves status with an ETag and answers If-None-Match with 304', async () => {
      const id = (await api.call('POST', '/v1/tunnels', ws.apiKey, reverseBody)).json.id;
      const res = await api.call('GET', `/v1/tunnels/${id}/status`, ws.apiKey);
      expect(res.status).toBe(200);
      expect(StatusSchema.strict().parse(res.json).state).toBe('pending');
      const etag = res.headers.get('ETag');
      expect(etag).toMatch(/^".+"$/);
      const cached = await api.app.request(`/v1/tunnels/${id}/status`, {
        headers: { Authorization: `Bearer ${ws.apiKey}`, 'If-None-Match': `W/${etag}` },
      });
      expect(cached.status).toBe(304);
      expect(await cached.text()).toBe('');
      await api.call('PATCH', `/v1/tunnels/${id}`, ws.apiKey, { enabled: false });
      const changed = await api.app.request(`/v1/tunnels/${id}/status`, {
        headers: { Authorization: `Bearer ${ws.apiKey}`, 'If-None-Match': etag ?? '' },
      });
      expect(changed.status).toBe(200);
      expect(changed.headers.get('ETag')).not.toBe(etag);
    });

    it('reconnect: 409 for a reverse tunnel (its customer reconnects) and a disabled one; 202 unassigned with no gateway', async () => {
      const reverse = (await api.call('POST', '/v1/tunnels', ws.apiKey, reverseBody)).json.id;
      const refused = await api.call('POST', `/v1/tunnels/${reverse}/reconnect`, ws.apiKey);
      expect(refused.status).toBe(409);
      expect(refused.json.error.code).toBe('conflict');
      expect(refused.json.error.message).toMatch(/reverse tunnels reconnect from the customer side/);

      const standard = (await api.call('POST', '/v1/tunnels', ws.apiKey, standardBody)).json.id;
      await api.call('PATCH', `/v1/tunnels/${standard}`, ws.apiKey, { enabled: false });
      const disabled = await api.call('POST', `/v1/tunnels/${standard}/reconnect`, ws.apiKey);
      expect(disabled.status).toBe(409);
      expect(disabled.json.error.message).toMatch(/disabled/);

      // No gateway worker in these tests: the caller is told the first one to start connects it.
      await api.call('PATCH', `/v1/tunnels/${standard}`, ws.apiKey, { enabled: true });
      const noGateway = await api.call('POST', `/v1/tunnels/${standard}/reconnect`, ws.apiKey);
      expect(noGateway.status).toBe(202);
      expect(noGateway.json).toEqual({
        outcome: 'unassigned',
        message: expect.stringMatching(/no gateway worker is running/),
      });
    });

    it('lists events (none yet for a new tunnel)', async () => {
      const id = (await api.call('POST', '/v1/tunnels', ws.apiKey, reverseBody)).json.id;
      expect((await api.call('GET', `/v1/tunnels/${id}/events`, ws.apiKey)).json).toEqual({ items: [] });
    });

    it('deletes: 204, then 404 everywhere; the port and the secret are freed', async () => {
      const t = (await api.call('POST', '/v1/tunnels', ws.apiKey, standardBody)).json;
      const port = t.connect?.port ?? (await api.table.store.getTunnel(ws.id, t.id))?.port;
      const res = await api.call('DELETE', `/v1/tunnels/${t.id}`, ws.apiKey);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect((await api.call('GET', `/v1/tunnels/${t.id}`, ws.apiKey)).status).toBe(404);
      expect((await api.call('DELETE', `/v1/tunnels/${t.id}`, ws.apiKey)).status).toBe(404);
      const { Items } = await api.table.doc.send(new ScanCommand({ TableName: api.table.tableName }));
      expect(Items?.some((i) => i.pk === keys.port(port).pk)).toBe(false);
      await expect(api.secrets.get(secretNames.tunnel(t.id))).rejects.toThrow(/not found/);
    });
  });

  describe('bad input', () => {
    const tooLong = 'x'.repeat(101);
    it.each([
      ['unknown top-level field', { ...reverseBody, color: 'red' }, 'color'],
      ['unknown nested field', { ...reverseBody, service: { host: 'a', port: 1, tls: true } }, 'service.tls'],
      ['port 0', { ...reverseBody, service: { host: 'a', port: 0 } }, 'service.port'],
      ['port 65536', { ...reverseBody, service: { host: 'a', port: 65536 } }, 'service.port'],
      ['port as string', { ...reverseBody, service: { host: 'a', port: '5432' } }, 'service.port'],
      ['port fraction', { ...reverseBody, service: { host: 'a', port: 22.5 } }, 'service.port'],
      ['empty name', { ...reverseBody, name: '' }, 'name'],
      ['blank name', { ...reverseBody, name: '   ' }, 'name'],
      ['over-long name', { ...reverseBody, name: tooLong }, 'name'],
      ['host with space', { ...reverseBody, service: { host: 'db internal', port: 1 } }, 'service.host'],
      ['host with ;', { ...reverseBody, service: { host: 'db;rm -rf /', port: 1 } }, 'service.host'],
      ['host with $()', { ...reverseBody, service: { host: '$(id).x', port: 1 } }, 'service.host'],
      ['host with port', { ...reverseBody, service: { host: 'db:5432', port: 1 } }, 'service.host'],
      ['host with backtick', { ...standardBody, ssh: { host: '`id`', user: 'u' } }, 'ssh.host'],
      ['user with space', { ...standardBody, ssh: { host: 'b.example.com', user: 'a b' } }, 'ssh.user'],
      [
        'bad fingerprint',
        { ...standardBody, ssh: { ...standardBody.ssh, hostKeyFingerprint: 'MD5:aa' } },
        'ssh.hostKeyFingerprint',
      ],
      ['missing service', { type: 'reverse', name: 'x' }, 'service'],
      ['unknown type', { ...reverseBody, type: 'sideways' }, 'type'],
      ['unknown auth method', { ...standardBody, auth: { method: 'kerberos' } }, 'auth.method'],
      [
        'unknown key type',
        { ...standardBody, auth: { method: 'generated', keyType: 'dsa' } },
        'auth.keyType',
      ],
      ['empty password', { ...standardBody, auth: { method: 'password', password: '' } }, 'auth.password'],
      ['publicKey on a standard tunnel', { ...standardBody, publicKey: 'ssh-ed25519 AAAA' }, 'publicKey'],
      ['garbage public key', { ...reverseBody, publicKey: 'hello world' }, 'publicKey'],
      ['two public keys', { ...reverseBody, publicKey: 'ssh-ed25519 AAAA\nssh-ed25519 BBBB' }, 'publicKey'],
      ['a JSON array', [], ''],
    ])('%s → 422 naming the field', async (_, body, path) => {
      const res = await api.call('POST', '/v1/tunnels', ws.apiKey, body);
      expect(res.status).toBe(422);
      expect(res.json.error.code).toBe('validation_failed');
      expect(res.json.error.details.map((d: { path: string }) => d.path)).toContain(path);
      for (const d of res.json.error.details) expect(d.message).toEqual(expect.any(String));
    });

    it('explains what is wrong with a customer public key', async () => {
      const customer = sshKeygenPrivateKey('');
      const pasted = await api.call('POST', '/v1/tunnels', ws.apiKey, {
        ...reverseBody,
        publicKey: customer.privateKey,
      });
      expect(pasted.status).toBe(422);
      expect(pasted.json.error.details[0].message).toMatch(/private key/i);
      expect(pasted.text).not.toContain(customer.privateKey.split('\n')[1]);
    });

    it.each([
      ['DSA', ['-t', 'dsa'], /DSA/],
      ['RSA 1024', ['-t', 'rsa', '-b', '1024'], /1024/],
    ])('rejects a %s customer key with 422 and says why', async (_, args, why) => {
      const dir = mkdtempSync(join(tmpdir(), 'tk-weak-'));
      try {
        execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-f', join(dir, 'k')]);
        const publicKey = readFileSync(join(dir, 'k.pub'), 'utf8');
        const res = await api.call('POST', '/v1/tunnels', ws.apiKey, { ...reverseBody, publicKey });
        expect(res.status).toBe(422);
        expect(res.json.error.details).toEqual([{ path: 'publicKey', message: expect.stringMatching(why) }]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('names every bad field of one body at once, a bad public key among them', async () => {
      const res = await api.call('POST', '/v1/tunnels', ws.apiKey, {
        ...reverseBody,
        service: { host: 'db.internal', port: 70000 },
        publicKey: 'ssh-ed25519 not-a-key me@laptop',
      });
      expect(res.status).toBe(422);
      expect(res.json.error.details).toEqual([
        { path: 'service.port', message: 'must be between 1 and 65535' },
        { path: 'publicKey', message: expect.stringMatching(/the key data after "ssh-ed25519"/) },
      ]);
    });

    it.each([
      ['malformed JSON', '{"type": "reverse",'],
      ['empty body', ''],
      ['a bare word', 'reverse'],
    ])('%s → 400 invalid_json', async (_, raw) => {
      const res = await api.call('POST', '/v1/tunnels', ws.apiKey, raw === '' ? undefined : raw);
      expect(res.status).toBe(400);
      expect(res.json.error.code).toBe('invalid_json');
    });

    it('a body over 64 KiB → 413, with or without Content-Length', async () => {
      const big = JSON.stringify({ ...reverseBody, name: 'x'.repeat(70_000) });
      const res = await api.call('POST', '/v1/tunnels', ws.apiKey, big);
      expect(res.status).toBe(413);
      expect(res.json.error.code).toBe('payload_too_large');
      const streamed = await api.app.request('/v1/tunnels', {
        method: 'POST',
        headers: { Authorization: `Bearer ${ws.apiKey}`, 'Content-Type': 'application/json' },
        body: new Blob([big]).stream(),
        duplex: 'half',
      } as RequestInit);
      expect(streamed.status).toBe(413);
    });

    it('unknown routes and ids → 404 in the error shape; missing auth → 401', async () => {
      expect((await api.call('GET', '/v1/nothing', ws.apiKey)).json.error.code).toBe('not_found');
      expect((await api.call('GET', '/v1/tunnels/tun_aaaaaaaaaaaaaaaa', ws.apiKey)).status).toBe(404);
      expect((await api.call('GET', `/v1/tunnels/${'x'.repeat(5000)}`, ws.apiKey)).status).toBe(404);
      const res = await api.call('GET', '/v1/tunnels', undefined);
      expect(res.status).toBe(401);
      expect(res.headers.get('WWW-Authenticate')).toBe('Bearer');
      expect((await api.call('GET', '/v1/tunnels', 'tk_not-a-real-key')).status).toBe(401);
    });

    it('random bodies, paths and queries on every route never produce a 5xx', async () => {
      const id = (await api.call('POST', '/v1/tunnels', ws.apiKey, reverseBody)).json.id;
      const routes: [string, string][] = [
        ['POST', '/v1/tunnels'],
        ['GET', '/v1/tunnels'],
        ['GET', `/v1/tunnels/${id}`],
        ['PATCH', `/v1/tunnels/${id}`],
        ['POST', `/v1/tunnels/${id}/rotate-key`],
        ['POST', `/v1/tunnels/${id}/reconnect`],
        ['GET', `/v1/tunnels/${id}/status`],
        ['GET', `/v1/tunnels/${id}/events`],
        ['POST', '/v1/admin/workspaces'],
        ['DELETE', '/v1/tunnels/tun_zzzzzzzzzzzzzzzz'],
      ];
      const body = fc.oneof(
        fc.json(),
        fc.string(),
        fc.record(
          {
            type: fc.constantFrom('reverse', 'standard', 'x'),
            name: fc.string(),
            service: fc.record({ host: fc.string(), port: fc.oneof(fc.integer(), fc.string(), fc.double()) }),
            ssh: fc.record(
              { host: fc.string(), user: fc.string(), port: fc.integer() },
              { requiredKeys: [] },
            ),
            auth: fc.record(
              { method: fc.string(), keyType: fc.string(), privateKey: fc.string() },
              { requiredKeys: [] },
            ),
            publicKey: fc.string(),
            enabled: fc.anything(),
          },
          { requiredKeys: [] },
        ),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...routes),
          body,
          fc.string({ maxLength: 20 }),
          async ([method, path], payload, query) => {
            const token = path.includes('admin') ? api.adminToken : ws.apiKey;
            const target =
              method === 'GET' ? `${path}?${encodeURIComponent(query)}=${encodeURIComponent(query)}` : path;
            const res = await api.app.request(target, {
              method,
              headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
              body:
                method === 'GET'
                  ? undefined
                  : typeof payload === 'string'
                    ? payload
                    : JSON.stringify(payload),
            });
            expect(res.status, `${method} ${target}`).toBeLessThan(500);
          },
        ),
        { numRuns: 300 },
      );
    });
  });

  it('gives 50 parallel reverse-tunnel creates 50 distinct ports; a delete frees its port', async () => {
    const own = await api.newWorkspace('parallel');
    const created = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        api.call('POST', '/v1/tunnels', own.apiKey, { ...reverseBody, name: `t${i}` }),
      ),
    );
    expect(created.map((r) => r.status)).toEqual(Array(50).fill(201));
    const ports = created.map((r) => r.json.reverse.remotePort as number);
    expect(new Set(ports).size).toBe(50);
    const [first] = created;
    expect((await api.call('DELETE', `/v1/tunnels/${first?.json.id}`, own.apiKey)).status).toBe(204);
    const { Items } = await api.table.doc.send(new ScanCommand({ TableName: api.table.tableName }));
    const claimed = new Set(
      Items?.filter((i) => String(i.pk).startsWith('PORT#')).map((i) => Number(String(i.pk).slice(5))),
    );
    expect(claimed.has(ports[0] ?? -1)).toBe(false);
    for (const port of ports.slice(1)) expect(claimed.has(port)).toBe(true);
  });

  it('isolates workspaces: another workspace gets 404 on every route and never sees the tunnel', async () => {
    const owner = await api.newWorkspace('a');
    const intruder = await api.newWorkspace('b');
    const id = (await api.call('POST', '/v1/tunnels', owner.apiKey, standardBody)).json.id;
    const attempts: [string, string, unknown?][] = [
      ['GET', `/v1/tunnels/${id}`],
      ['PATCH', `/v1/tunnels/${id}`, { name: 'mine now' }],
      ['POST', `/v1/tunnels/${id}/rotate-key`, {}],
      ['POST', `/v1/tunnels/${id}/reconnect`],
      ['GET', `/v1/tunnels/${id}/status`],
      ['GET', `/v1/tunnels/${id}/events`],
      ['DELETE', `/v1/tunnels/${id}`],
    ];
    for (const [method, path, body] of attempts) {
      const res = await api.call(method, path, intruder.apiKey, body);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.json.error.code).toBe('not_found');
    }
    expect((await api.call('GET', '/v1/tunnels', intruder.apiKey)).json.items).toEqual([]);
    const ownerView = await api.call('GET', `/v1/tunnels/${id}`, owner.apiKey);
    expect(ownerView.json.name).toBe('orders-db');
  });

  it('never lets secret material reach the table, the logs or a response', async () => {
    const own = await api.newWorkspace('secrets');
    const customer = sshKeygenPrivateKey('pass phrase 123');
    const password = 'hunter2-very-secret-password';
    const bodies: string[] = [];
    const record = async (res: { text: string }) => {
      bodies.push(res.text);
      return res;
    };
    const withKey = (
      await record(
        await api.call('POST', '/v1/tunnels', own.apiKey, {
          ...standardBody,
          auth: { method: 'private_key', privateKey: customer.privateKey, passphrase: 'pass phrase 123' },
        }),
      )
    ).text;
    const withPassword = JSON.parse(
      (
        await record(
          await api.call('POST', '/v1/tunnels', own.apiKey, {
            ...standardBody,
            auth: { method: 'password', password },
          }),
        )
      ).text,
    );
    const generated = JSON.parse(
      (await record(await api.call('POST', '/v1/tunnels', own.apiKey, standardBody))).text,
    );
    const reverse = JSON.parse(
      (await record(await api.call('POST', '/v1/tunnels', own.apiKey, reverseBody))).text,
    );
    for (const id of [JSON.parse(withKey).id, withPassword.id, generated.id, reverse.id]) {
      await record(await api.call('GET', `/v1/tunnels/${id}`, own.apiKey));
      await record(await api.call('PATCH', `/v1/tunnels/${id}`, own.apiKey, { name: 'renamed' }));
      await record(await api.call('POST', `/v1/tunnels/${id}/rotate-key`, own.apiKey, {}));
    }
    await record(await api.call('GET', '/v1/tunnels', own.apiKey));
    // Bad requests that carry secrets must not echo them either.
    await record(
      await api.call('POST', '/v1/tunnels', own.apiKey, {
        ...standardBody,
        auth: { method: 'password', password, x: 1 },
      }),
    );
    await record(await api.call('POST', '/v1/tunnels', own.apiKey, `{"auth":{"password":"${password}"`));

    const storedSecrets = await Promise.all(
      [generated.id, withPassword.id].map(async (id) =>
        TunnelSecretSchema.parse(JSON.parse(await api.secrets.get(secretNames.tunnel(id)))),
      ),
    );
    const material = [
      password,
      'pass phrase 123',
      ...keyBodyLines(customer.privateKey),
      ...storedSecrets.flatMap((s) => s.keys.flatMap((k) => keyBodyLines(k.privateKey))),
      own.apiKey,
    ];
    const { Items } = await api.table.doc.send(new ScanCommand({ TableName: api.table.tableName }));
    const haystacks = {
      table: JSON.stringify(Items),
      logs: api.logs.join('\n'),
      responses: bodies.join('\n'),
    };
    for (const [where, text] of Object.entries(haystacks)) {
      for (const needle of material)
        expect(text.includes(needle), `${where} contains secret material ${needle.slice(0, 12)}`).toBe(false);
    }
    // The one allowed exception: the generated reverse private key, in its own create response.
    expect(bodies.filter((b) => b.includes(keyBodyLines(reverse.privateKey)[0] ?? '∅'))).toHaveLength(1);
    expect(haystacks.table.includes(keyBodyLines(reverse.privateKey)[0] ?? '∅')).toBe(false);
    expect(api.logs.length).toBeGreaterThan(0);
  });
});

describe('rate limiting', () => {
  it('answers 429 with Retry-After once a workspace exceeds its budget', async () => {
    const api = await createTestApi();
    try {
      const ws = await api.newWorkspace();
      const app = api.appWith({ limits: { perWorkspace: { ratePerSec: 1, burst: 3 } } });
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        statuses.push(
          (await app.request('/v1/tunnels', { headers: { Authorization: `Bearer ${ws.apiKey}` } })).status,
        );
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      const res = await app.request('/v1/tunnels', { headers: { Authorization: `Bearer ${ws.apiKey}` } });
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
      expect(Number(res.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
    } finally {
      await api.close();
    }
  });
});

/** Base64 body lines of a PEM/OpenSSH key that are unique to it (the first holds the common header). */
function keyBodyLines(pem: string): string[] {
  return pem
    .split('\n')
    .filter((l) => l.length >= 40 && !l.startsWith('-----'))
    .slice(1, 4);
}

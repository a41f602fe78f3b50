/**
 * A reverse tunnel's connectors through the API (high availability): add (a key given or one
 * generated and shown once), list with each one's commands, get one, remove; the limits and the
 * refusals a user runs into, each with its status.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi } from '../../helpers/api';
import { sshKeygen } from '../../helpers/customer';

type Api = Awaited<ReturnType<typeof createTestApi>>;

describe('/v1/tunnels/{id}/connectors', () => {
  let api: Api;
  let ws: { id: string; apiKey: string };
  const service = { host: '10.1.2.3', port: 5432 };

  beforeAll(async () => {
    api = await createTestApi();
    ws = await api.newWorkspace();
  });
  afterAll(async () => {
    await api.close();
  });

  const reverse = async (extra: Record<string, unknown> = {}) => {
    const res = await api.call('POST', '/v1/tunnels', ws.apiKey, {
      type: 'reverse',
      name: 'ha',
      service,
      ...extra,
    });
    expect(res.status).toBe(201);
    return res.json;
  };

  it('takes reverse.connectors at create and PATCH, and refuses it out of range or on a standard tunnel', async () => {
    const tunnel = await reverse({ reverse: { connectors: 3 } });
    expect(tunnel.reverse.connectors).toBe(3);
    expect(tunnel.status.connectors).toEqual({ live: 0, expected: 3 });
    const patched = await api.call('PATCH', `/v1/tunnels/${tunnel.id}`, ws.apiKey, {
      reverse: { connectors: 2 },
    });
    expect(patched.status).toBe(200);
    expect(patched.json.reverse.connectors).toBe(2);
    for (const connectors of [0, 5, 1.5]) {
      const bad = await api.call('PATCH', `/v1/tunnels/${tunnel.id}`, ws.apiKey, { reverse: { connectors } });
      expect(bad.status).toBe(422);
      expect(JSON.stringify(bad.json.error.details)).toContain('reverse.connectors');
    }
    const standard = await api.call('POST', '/v1/tunnels', ws.apiKey, {
      type: 'standard',
      name: 's',
      ssh: { host: 'bastion.example.com', user: 'tunnel' },
      service,
    });
    const refused = await api.call('PATCH', `/v1/tunnels/${standard.json.id}`, ws.apiKey, {
      reverse: { connectors: 2 },
    });
    expect(refused.status).toBe(422);
    expect((await api.call('GET', `/v1/tunnels/${standard.json.id}/connectors`, ws.apiKey)).status).toBe(409);
  });

  it('adds connectors with their own keys and commands, lists and removes them', async () => {
    const tunnel = await reverse();
    expect(tunnel.status.connectors).toBeUndefined();
    const generated = await api.call('POST', `/v1/tunnels/${tunnel.id}/connectors`, ws.apiKey);
    expect(generated.status).toBe(201);
    expect(generated.json.privateKey).toContain('PRIVATE KEY');
    expect(generated.json.id).toMatch(/^cn_[a-z2-7]{12}$/);
    expect(generated.json.commands.ssh).toContain(`tunnelkeeper_${tunnel.id}_${generated.json.id}`);
    expect(generated.json.commands.systemd).toContain(
      `tunnelkeeper-${tunnel.id}-${generated.json.id}.service`,
    );
    const key = await sshKeygen('ed25519');
    const given = await api.call('POST', `/v1/tunnels/${tunnel.id}/connectors`, ws.apiKey, {
      publicKey: key.publicKey,
    });
    expect(given.status).toBe(201);
    expect(given.json.privateKey).toBeUndefined();
    // The same key twice could not be told apart at login.
    const again = await api.call('POST', `/v1/tunnels/${tunnel.id}/connectors`, ws.apiKey, {
      publicKey: key.publicKey,
    });
    expect(again.status).toBe(409);
    const listed = await api.call('GET', `/v1/tunnels/${tunnel.id}/connectors`, ws.apiKey);
    expect(listed.status).toBe(200);
    expect(listed.json.expected).toBe(1);
    expect(listed.json.items.map((c: { id: string; live: boolean }) => [c.id, c.live])).toEqual([
      ['primary', false],
      [generated.json.id, false],
      [given.json.id, false],
    ]);
    const one = await api.call('GET', `/v1/tunnels/${tunnel.id}/connectors/${given.json.id}`, ws.apiKey);
    expect(one.json.publicKeyFingerprint).toBe(given.json.publicKeyFingerprint);
    expect(
      (await api.call('GET', `/v1/tunnels/${tunnel.id}/connectors/cn_nosuchconnect`, ws.apiKey)).status,
    ).toBe(404);

    // A fourth fits, a fifth does not.
    expect((await api.call('POST', `/v1/tunnels/${tunnel.id}/connectors`, ws.apiKey)).status).toBe(201);
    const fifth = await api.call('POST', `/v1/tunnels/${tunnel.id}/connectors`, ws.apiKey);
    expect(fifth.status).toBe(409);
    expect(fifth.json.error.code).toBe('quota_exceeded');

    // Removing the tunnel's own key leaves publicKey showing the next connector's.
    expect((await api.call('DELETE', `/v1/tunnels/${tunnel.id}/connectors/primary`, ws.apiKey)).status).toBe(
      204,
    );
    const after = await api.call('GET', `/v1/tunnels/${tunnel.id}`, ws.apiKey);
    expect(after.json.publicKeyFingerprint).toBe(generated.json.publicKeyFingerprint);
    const left = await api.call('GET', `/v1/tunnels/${tunnel.id}/connectors`, ws.apiKey);
    expect(left.json.items).toHaveLength(3);
    for (const c of left.json.items.slice(1)) {
      expect(
        (await api.call('DELETE', `/v1/tunnels/${tunnel.id}/connectors/${c.id}`, ws.apiKey)).status,
      ).toBe(204);
    }
    const last = await api.call(
      'DELETE',
      `/v1/tunnels/${tunnel.id}/connectors/${generated.json.id}`,
      ws.apiKey,
    );
    expect(last.status).toBe(409);
    expect(last.json.error.message).toContain('last connector');
  });
});

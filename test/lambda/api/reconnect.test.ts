/**
 * `POST /v1/tunnels/{id}/reconnect` as the API sees the gateway: it asks the worker that wrote the
 * tunnel's state over that worker's real control endpoint, falls back to every live worker when
 * that one does not serve it, and answers 503 with Retry-After when a live worker cannot be reached.
 * The workers here are control endpoints with heartbeats in the table, no tunnels behind them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlServer } from '../../../fargate/control-server';
import { freePort } from '../../../local/free-port';
import type { ReconnectOutcome } from '../../../shared/control';
import { createLogger } from '../../../shared/logger';
import { DynamoGatewayStore } from '../../../shared/store/dynamo-gateway-store';
import { createTestApi } from '../../helpers/api';

type Api = Awaited<ReturnType<typeof createTestApi>>;

/** The token createTestApi gives the API's worker control client. */
const CONTROL_TOKEN = 'no-gateway-in-these-tests';

describe('POST /v1/tunnels/{id}/reconnect through the workers', () => {
  let api: Api;
  let ws: { id: string; apiKey: string };
  let gateway: DynamoGatewayStore;
  const servers: ControlServer[] = [];
  const standardBody = {
    type: 'standard',
    name: 'orders-db',
    ssh: { host: 'bastion.example.com', user: 'tunnel' },
    service: { host: '10.1.2.3', port: 5432 },
  };

  beforeAll(async () => {
    api = await createTestApi();
    ws = await api.newWorkspace();
    gateway = new DynamoGatewayStore(api.table.doc, api.table.tableName);
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await api.close();
  });

  /** A worker alive by its heartbeat, whose control endpoint answers `serves` for the tunnels it has. */
  async function worker(workerId: string, serves: Map<string, ReconnectOutcome>) {
    const asked: string[] = [];
    const server = new ControlServer({
      host: '127.0.0.1',
      port: 0,
      token: CONTROL_TOKEN,
      logger: createLogger('error', () => {}),
      testTunnel: async () => undefined,
      reconnectTunnel: (id) => {
        asked.push(id);
        return serves.get(id);
      },
    });
    servers.push(server);
    const controlUrl = await server.listen();
    await beat(workerId, controlUrl);
    return { asked, controlUrl };
  }

  async function beat(workerId: string, controlUrl: string) {
    const at = new Date().toISOString();
    await gateway.putHeartbeat(
      {
        workerId,
        lastBeatAt: at,
        startedAt: at,
        address: '127.0.0.1',
        version: 'test',
        controlUrl,
        counts: { reverse: 0, standard: 0 },
      },
      3600,
    );
  }

  async function standardTunnel(owner?: string): Promise<string> {
    const id = (await api.call('POST', '/v1/tunnels', ws.apiKey, standardBody)).json.id;
    if (owner) {
      const at = new Date().toISOString();
      await gateway.writeState(id, { state: 'down', since: at, owner, connectedAt: at });
    }
    return id;
  }

  const reconnect = (id: string) => api.call('POST', `/v1/tunnels/${id}/reconnect`, ws.apiKey);

  it('asks the worker that serves the tunnel, which drops its backoff: 202 reconnecting', async () => {
    const id = await standardTunnel('wk_owner');
    const owner = await worker('wk_owner', new Map([[id, 'reconnecting']]));
    const res = await reconnect(id);
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ outcome: 'reconnecting', message: expect.stringContaining('wk_owner') });
    expect(owner.asked).toEqual([id]);
  });

  it('finds the worker among the live ones when the state names none, and says when nobody serves it', async () => {
    const served = await standardTunnel();
    const unserved = await standardTunnel();
    const other = await worker('wk_other', new Map([[served, 'connecting']]));
    expect((await reconnect(served)).json).toMatchObject({ outcome: 'connecting' });
    const none = await reconnect(unserved);
    expect(none.status).toBe(202);
    expect(none.json).toEqual({
      outcome: 'unassigned',
      message: 'no gateway worker serves the tunnel right now; the one that claims it connects at once',
    });
    expect(other.asked).toEqual(expect.arrayContaining([served, unserved]));
  });

  it('a live worker that does not answer: 503 unavailable with Retry-After, naming the worker', async () => {
    const id = await standardTunnel('wk_silent');
    await beat('wk_silent', `http://127.0.0.1:${await freePort()}`);
    const res = await reconnect(id);
    expect(res.status).toBe(503);
    expect(res.headers.get('Retry-After')).toBe('5');
    expect(res.json.error).toMatchObject({
      code: 'unavailable',
      message: expect.stringContaining('gateway worker wk_silent did not answer'),
      details: { dependency: 'gateway', reason: 'unreachable' },
    });
  });

  it('the control endpoint refuses a wrong token and unknown paths', async () => {
    const { controlUrl } = await worker('wk_token', new Map());
    const wrong = await fetch(`${controlUrl}/tunnels/tun_aaaaaaaaaaaaaaaa/reconnect`, {
      method: 'POST',
      headers: { Authorization: 'Bearer wrong' },
    });
    expect(wrong.status).toBe(401);
    const unknown = await fetch(`${controlUrl}/tunnels/tun_aaaaaaaaaaaaaaaa/restart`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${CONTROL_TOKEN}` },
    });
    expect(unknown.status).toBe(404);
  });
});

/**
 * The gateway's AWS health endpoint: `/` for the task, `/ports/<port>` for one tunnel port (what
 * each connect load balancer's target group asks), served over a real HTTP server on port 0.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHealthServer, type HealthSource, healthAnswer } from '../../fargate/health-endpoint';

const source = (serving: boolean, ports: number[]): HealthSource => ({
  workerId: 'wk_1',
  isServing: () => serving,
  listensOn: (port) => ports.includes(port),
});

describe('healthAnswer', () => {
  it.each<[string, string, HealthSource, number, object]>([
    ['the task, serving', '/', source(true, []), 200, { ok: true, workerId: 'wk_1' }],
    ['the task, stopping', '/', source(false, []), 503, { ok: false, workerId: 'wk_1' }],
    ['a port it listens on', '/ports/20001', source(true, [20001]), 200, { ok: true, port: 20001 }],
    ['a port it does not listen on', '/ports/20002', source(true, [20001]), 503, { ok: false, port: 20002 }],
    ['a port it listens on while stopping', '/ports/20001', source(false, [20001]), 503, { ok: false }],
    ['a query string is ignored', '/ports/20001?x=1', source(true, [20001]), 200, { ok: true }],
    ['port 0', '/ports/0', source(true, [0]), 404, { ok: false }],
    ['a port past 65535', '/ports/65536', source(true, [65536]), 404, { ok: false }],
    ['a port that is no number', '/ports/ssh', source(true, []), 404, { ok: false }],
    ['a path below a port', '/ports/20001/x', source(true, [20001]), 404, { ok: false }],
    ['any other path', '/healthz', source(true, []), 404, { ok: false }],
  ])('%s: %s', (_, url, given, status, body) => {
    const answer = healthAnswer(url, given);
    expect(answer.status).toBe(status);
    expect(answer.body).toMatchObject(body);
  });
});

describe('createHealthServer', () => {
  const listening = new Set([20001]);
  const server = createHealthServer({
    workerId: 'wk_2',
    isServing: () => true,
    listensOn: (port) => listening.has(port),
  });
  let base = '';

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('answers each port as the gateway listens at the moment of the check', async () => {
    const check = async (path: string) => {
      const res = await fetch(`${base}${path}`);
      return { status: res.status, body: await res.json() };
    };
    expect(await check('/')).toEqual({ status: 200, body: { ok: true, workerId: 'wk_2' } });
    expect(await check('/ports/20001')).toEqual({
      status: 200,
      body: { ok: true, workerId: 'wk_2', port: 20001 },
    });
    listening.delete(20001);
    expect((await check('/ports/20001')).status).toBe(503);
  });
});

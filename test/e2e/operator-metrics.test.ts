/**
 * Issue 16, acceptance 7 (first half): `GET /metrics` is valid Prometheus text, read back by a real
 * parser, on the API port and on the gateway's control endpoint, behind the operator token; and its
 * counters move as logins, refusals and bytes happen, caused by Debian's OpenSSH as a customer
 * causes them. The same bytes show per tunnel in `status.traffic`. One stack; short intervals.
 */
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../shared/schemas';
import { Cleanups } from '../helpers/cleanups';
import { customerFor, requireTools, reverseTunnelWithCustomer, sshKeygen } from '../helpers/customer';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import { type MetricFamily, parsePrometheusText, seriesValue } from '../helpers/prometheus-text';
import { waitFor } from '../helpers/wait-for';

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;
const PAYLOAD_BYTES = 256 * 1024;

/** Sends `bytes` through host:port to the echo server and reads them all back, then closes. */
function echoThrough(host: string, port: number, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let received = 0;
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= bytes) {
        socket.end();
        resolve();
      }
    });
    socket.write(Buffer.alloc(bytes, 7));
  });
}

describe('operator metrics, end to end (issue 16, acceptance 7)', () => {
  let stack: TestStack;
  let echo: EchoServer;
  const cleanups = new Cleanups();

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel');
    [stack, echo] = await Promise.all([
      startTestStack({
        portRange: '19500-19519',
        heartbeatIntervalMs: 500,
        env: { SWEEP_INTERVAL_MS: '300' },
      }),
      startEchoServer(),
    ]);
    cleanups.add(() => stack.stop());
    cleanups.add(() => echo.close());
  });
  afterAll(() => cleanups.runAll());

  const scrape = async (url: string, token: string) => {
    const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
    return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
  };
  const apiMetrics = async (): Promise<Map<string, MetricFamily>> => {
    const res = await scrape(`${stack.baseUrl}/metrics`, stack.adminToken);
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
    return await parsePrometheusText(res.text);
  };

  it('serves valid Prometheus text behind the operator token, on the API port and the gateway', async () => {
    const families = await apiMetrics();
    // Every metric the docs list is there, and every one there is in the docs.
    const documented = [
      ...(await readFile(new URL('../../docs/metrics.md', import.meta.url), 'utf8')).matchAll(
        /^\| `(tunnelkeeper_[a-z_]+)`/gm,
      ),
    ].map((m) => m[1]);
    const ours = [...families.keys()].filter((name) => /^tunnelkeeper_(?!process_|nodejs_)/.test(name));
    expect(new Set(ours)).toEqual(new Set(documented));
    expect(families.get('tunnelkeeper_tunnel_connection_open_seconds')?.type).toBe('histogram');

    expect((await scrape(`${stack.baseUrl}/metrics`, stack.apiKey)).status).toBe(401);
    expect((await fetch(`${stack.baseUrl}/metrics`)).status).toBe(401);
    const control = stack.gateway.controlEndpoint;
    if (!control) throw new Error('gateway has no control endpoint');
    expect((await scrape(`${control}/metrics`, stack.apiKey)).status).toBe(401);
    const gateway = await scrape(`${control}/metrics`, stack.adminToken);
    expect(gateway.status).toBe(200);
    expect((await parsePrometheusText(gateway.text)).has('tunnelkeeper_logins_accepted_total')).toBe(true);
  });

  it('counts refused and accepted logins, sessions, connections and bytes as they happen', async () => {
    const before = await apiMetrics();
    const refused = (reason: string) => seriesValue(before, 'tunnelkeeper_logins_refused_total', { reason });
    const { tunnel, reverse, customer } = await reverseTunnelWithCustomer(stack.createReverse, {
      host: '127.0.0.1',
      port: echo.port,
    });
    cleanups.add(() => customer.dispose());

    // A stranger's key: refused as the wrong key, and counted so.
    const stranger = await customerFor(tunnel, (await sshKeygen('ed25519')).privateKey);
    cleanups.add(() => stranger.dispose());
    expect((await stranger.exec(reverse.commands.ssh)).stderr).toContain('Permission denied (publickey)');
    const afterRefusal = await apiMetrics();
    expect(
      seriesValue(afterRefusal, 'tunnelkeeper_logins_refused_total', { reason: 'wrong_key' }),
    ).toBeGreaterThan(refused('wrong_key'));
    expect(seriesValue(afterRefusal, 'tunnelkeeper_logins_accepted_total')).toBe(
      seriesValue(before, 'tunnelkeeper_logins_accepted_total'),
    );

    // The customer's own ssh: accepted, one session, the tunnel served here.
    const ssh = customer.start(reverse.commands.ssh);
    const up = await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);
    const connected = await apiMetrics();
    expect(seriesValue(connected, 'tunnelkeeper_logins_accepted_total')).toBe(
      seriesValue(before, 'tunnelkeeper_logins_accepted_total') + 1,
    );
    expect(seriesValue(connected, 'tunnelkeeper_customer_sessions')).toBeGreaterThanOrEqual(1);
    expect(
      seriesValue(connected, 'tunnelkeeper_gateway_tunnels', { type: 'reverse' }),
    ).toBeGreaterThanOrEqual(1);

    // Bytes both ways through the tunnel.
    const connect = up.connect;
    if (!connect) throw new Error('up without connect');
    await echoThrough(connect.host, connect.port, PAYLOAD_BYTES);
    const moved = await waitFor(
      async () => {
        const now = await apiMetrics();
        return seriesValue(now, 'tunnelkeeper_channels_open', { type: 'reverse' }) === 0 ? now : undefined;
      },
      5_000,
      { what: 'the connection to close' },
    );
    const delta = (name: string, labels: Record<string, string>) =>
      seriesValue(moved, name, labels) - seriesValue(before, name, labels);
    const bytes = 'tunnelkeeper_tunnel_bytes_total';
    expect(delta(bytes, { type: 'reverse', direction: 'to_service' })).toBeGreaterThanOrEqual(PAYLOAD_BYTES);
    expect(delta(bytes, { type: 'reverse', direction: 'from_service' })).toBeGreaterThanOrEqual(
      PAYLOAD_BYTES,
    );
    expect(delta('tunnelkeeper_tunnel_connections_total', { type: 'reverse' })).toBe(1);
    expect(delta('tunnelkeeper_tunnel_connection_open_seconds', { type: 'reverse' })).toBe(1);

    // The sweeper (its own thread) reports what it saw into the same registry.
    await waitFor(
      async () =>
        seriesValue(await apiMetrics(), 'tunnelkeeper_tunnels', { state: 'up', type: 'reverse' }) >= 1 ||
        undefined,
      10_000,
      { what: 'a sweep that saw the tunnel up' },
    );

    // Per tunnel in the API, from the gateway's TRAFFIC item (written with a heartbeat): the first
    // one after the connection ended (one written while it was open shows it open).
    const shown = await stack.waitForTunnel(
      tunnel.id,
      (t) => (t.status.traffic?.connections ?? 0) >= 1 && t.status.traffic?.openConnections === 0,
      5_000,
    );
    expect(shown.status.traffic).toMatchObject({ connections: 1, openConnections: 0 });
    expect(shown.status.traffic?.bytesToService).toBeGreaterThanOrEqual(PAYLOAD_BYTES);
    expect(shown.status.traffic?.bytesFromService).toBeGreaterThanOrEqual(PAYLOAD_BYTES);
    ssh.kill();
  });
});

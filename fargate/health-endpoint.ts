/**
 * The gateway task's health endpoint in AWS (`HEALTH_PORT`), asked by the load balancers:
 * - `/`: the task serves (the public SSH load balancer, and the container's own health check);
 * - `/ports/<port>`: the task serves that tunnel port. Each internal connect load balancer's target
 *   group of a port asks this, so the port is routed only to the tasks that listen on it: every
 *   gateway for a reverse tunnel (they relay to the one carrying it), the lease holder alone for a
 *   standard tunnel (not relayed). What SO_REUSEPORT does on one machine, where only listening
 *   gateways share a port.
 * Both stay up while the table is down, on purpose: replacing the task would drop its tunnels.
 */
import { createServer, type Server } from 'node:http';

export interface HealthSource {
  workerId: string;
  /** False from the moment the gateway starts stopping. */
  isServing(): boolean;
  listensOn(port: number): boolean;
}

export interface HealthAnswer {
  status: 200 | 404 | 503;
  body: { ok: boolean; workerId: string; port?: number };
}

const PORT_PATH = /^\/ports\/(\d{1,5})$/;

/** What the endpoint answers for `url` (the request target: path and perhaps a query). */
export function healthAnswer(url: string, source: HealthSource): HealthAnswer {
  const path = url.split('?')[0] ?? '';
  const { workerId } = source;
  if (path === '/') {
    const ok = source.isServing();
    return { status: ok ? 200 : 503, body: { ok, workerId } };
  }
  const match = PORT_PATH.exec(path);
  const port = Number(match?.[1]);
  if (!match || port < 1 || port > 65535) return { status: 404, body: { ok: false, workerId } };
  const ok = source.isServing() && source.listensOn(port);
  return { status: ok ? 200 : 503, body: { ok, workerId, port } };
}

/** An HTTP server answering `healthAnswer` (call `listen` on it). */
export function createHealthServer(source: HealthSource): Server {
  return createServer((req, res) => {
    const { status, body } = healthAnswer(req.url ?? '/', source);
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  });
}

/**
 * Backpressure through a reverse tunnel (issue 3, acceptance 8): a fast writer on one side and a
 * slow reader on the other, both ways, 256 MiB each. The stack runs as its own process so its RSS
 * (/proc/<pid>/status) is the gateway's alone; it must stay within a bound far below what
 * buffering the difference between writer and reader would take.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Tunnel, TunnelSchema } from '../../shared/schemas';
import { type Customer, customerFor, requireTools, sshKeygen } from '../helpers/customer';
import { disposeStacks, type StartedStack, startStack } from '../helpers/local-stack';
import { waitFor } from '../helpers/wait-for';

const MiB = 1024 * 1024;
const FLOW_BYTES = 256 * MiB;
/** The slow side reads at this rate; the fast side writes as fast as the tunnel takes it. */
const SLOW_READ_BYTES_PER_SEC = 48 * MiB;
/** Allowed RSS growth of the stack process over its warmed-up baseline while the data flows. */
const RSS_GROWTH_BOUND = 64 * MiB;
/** Allowed lead of the writer over the reader: every buffer on the way (kernel, ssh, gateway) together. */
const IN_FLIGHT_BOUND = 48 * MiB;

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (!kb) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}

/** Writes `total` random bytes as fast as `socket` accepts them (waiting for drain), then ends. */
function writeFast(socket: Socket, total: number, progress: (bytes: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const block = randomBytes(MiB);
    let written = 0;
    socket.once('error', reject);
    const more = () => {
      while (written < total) {
        // A different block each time, so a lost or repeated chunk changes the checksum.
        const chunk = Buffer.from(block);
        chunk.writeUInt32BE(written / MiB, 0);
        hash.update(chunk);
        written += chunk.length;
        progress(written);
        if (!socket.write(chunk)) {
          socket.once('drain', more);
          return;
        }
      }
      socket.end(() => resolve(hash.digest('hex')));
    };
    more();
  });
}

/** Reads until the end at no more than `bytesPerSec`; resolves with the count and checksum. */
function readSlowly(
  socket: Socket,
  bytesPerSec: number,
  progress: (bytes: number) => void,
): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const sliceMs = 50;
    const perSlice = (bytesPerSec * sliceMs) / 1000;
    let bytes = 0;
    let sliceStart = performance.now();
    let inSlice = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      inSlice += chunk.length;
      progress(bytes);
      if (inSlice >= perSlice) {
        // Over this slice's budget: stop reading (the kernel, then ssh, then the writer stall).
        socket.pause();
        const wait = Math.max(0, sliceStart + sliceMs - performance.now());
        timer = setTimeout(() => {
          sliceStart = performance.now();
          inSlice = 0;
          socket.resume();
        }, wait);
      }
    });
    socket.once('end', () => {
      clearTimeout(timer);
      resolve({ bytes, sha256: hash.digest('hex') });
    });
  });
}

/**
 * The customer's service: the first byte a connection sends picks its role. `W`: write FLOW_BYTES
 * fast. `R`: read everything slowly. `E`: echo (for the warm-up).
 */
function startService(): Promise<{
  server: Server;
  port: number;
  written: number;
  read: number;
  /** Checksums of what `W` connections wrote. */
  writes: Promise<string>[];
  /** What `R` connections read. */
  reads: Promise<{ bytes: number; sha256: string }>[];
}> {
  const state = {
    server: createServer({ allowHalfOpen: true }),
    port: 0,
    written: 0,
    read: 0,
    writes: [] as Promise<string>[],
    reads: [] as Promise<{ bytes: number; sha256: string }>[],
  };
  state.server.on('connection', (socket) => {
    socket.on('error', () => {});
    socket.once('data', (first: Buffer) => {
      const role = first.subarray(0, 1).toString();
      const rest = first.subarray(1);
      if (role === 'E') {
        if (rest.length > 0) socket.write(rest);
        socket.pipe(socket);
      } else if (role === 'W') {
        state.writes.push(
          writeFast(socket, FLOW_BYTES, (n) => {
            state.written = n;
          }),
        );
      } else if (role === 'R') {
        socket.unshift(rest);
        state.reads.push(
          readSlowly(socket, SLOW_READ_BYTES_PER_SEC, (n) => {
            state.read = n;
          }).then((r) => {
            socket.end();
            return r;
          }),
        );
      } else socket.destroy();
    });
  });
  return new Promise((resolve) =>
    state.server.listen(0, '127.0.0.1', () => {
      const address = state.server.address();
      state.port = typeof address === 'object' && address ? address.port : 0;
      resolve(state);
    }),
  );
}

describe('reverse-tunnel backpressure keeps the gateway memory bounded', () => {
  let dataDir: string;
  let stack: StartedStack | undefined;
  let customer: Customer | undefined;
  let service: Awaited<ReturnType<typeof startService>> | undefined;
  const apiKey = `tk_${randomBytes(24).toString('base64url')}`;

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    dataDir = await mkdtemp(join(tmpdir(), 'tk-memory-'));
    stack = await startStack(
      {
        DATA_DIR: dataDir,
        DYNAMODB_ENDPOINT: inject('dynamoEndpoint'),
        TABLE_NAME: `test-${randomBytes(6).toString('hex')}`,
        BOOTSTRAP_API_KEY: apiKey,
        ADMIN_TOKEN: `tka_${randomBytes(24).toString('base64url')}`,
        TUNNEL_PORT_RANGE: '25000-25999',
        LOG_LEVEL: 'info',
      },
      30_000,
      'node',
    );
    service = await startService();
  });

  afterAll(async () => {
    await customer?.dispose();
    if (stack) await disposeStacks([stack]);
    await new Promise<void>((resolve) => (service ? service.server.close(() => resolve()) : resolve()));
    await rm(dataDir, { recursive: true, force: true });
  });

  it('moves 256 MiB each way between a fast writer and a slow reader with bounded gateway RSS', async () => {
    if (!stack || !service) throw new Error('not started');
    const pid = stack.child.pid;
    if (pid === undefined) throw new Error('stack has no pid');
    const key = await sshKeygen('ed25519');
    const res = await fetch(`${stack.baseUrl}/v1/tunnels`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        type: 'reverse',
        name: 'memory',
        service: { host: '127.0.0.1', port: service.port },
        publicKey: key.publicKey,
      }),
    });
    expect(res.status).toBe(201);
    const tunnel = TunnelSchema.parse(await res.json());
    if (!tunnel.reverse) throw new Error('no reverse block');
    const remotePort = tunnel.reverse.remotePort;
    customer = await customerFor(tunnel, key.privateKey);
    const ssh = customer.start(tunnel.reverse.commands.ssh);
    await waitFor(
      async () => {
        const r = await fetch(`${stack?.baseUrl}/v1/tunnels/${tunnel.id}`, {
          headers: { Authorization: `Bearer ${apiKey}` },
        });
        const t: Tunnel = TunnelSchema.parse(await r.json());
        return t.status.state === 'up';
      },
      15_000,
      { what: `tunnel up (ssh: ${ssh.stderr()})`, intervalMs: 100 },
    );

    // Warm-up: code paths compiled, pools and buffers allocated, before the baseline is taken.
    for (let i = 0; i < 3; i++) await echoThrough(remotePort, 16 * MiB);
    const baseline = await rssOf(pid);
    let peak = baseline;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await rssOf(pid));
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();

    try {
      // 1. Customer side writes fast, platform side reads slowly.
      let maxAhead = 0;
      let platformRead = 0;
      service.written = 0;
      const down = connect(remotePort, '127.0.0.1');
      down.write('W');
      const downStart = performance.now();
      const received = await readSlowly(down, SLOW_READ_BYTES_PER_SEC, (n) => {
        platformRead = n;
        maxAhead = Math.max(maxAhead, (service?.written ?? 0) - platformRead);
      });
      const downMs = performance.now() - downStart;
      down.destroy();
      const sentSha = await service.writes[0];
      expect(received).toEqual({ bytes: FLOW_BYTES, sha256: sentSha });

      // 2. Platform side writes fast, customer side reads slowly.
      let maxAheadUp = 0;
      let platformWritten = 0;
      service.read = 0;
      const up = connect({ port: remotePort, host: '127.0.0.1', allowHalfOpen: true });
      up.write('R');
      const upStart = performance.now();
      const upSha = await writeFast(up, FLOW_BYTES, (n) => {
        platformWritten = n;
        maxAheadUp = Math.max(maxAheadUp, platformWritten - (service?.read ?? 0));
      });
      await waitFor(() => service?.reads.length === 1, 5_000, { what: 'the service reading' });
      const upReceived = await service.reads[0];
      const upMs = performance.now() - upStart;
      up.destroy();
      expect(upReceived).toEqual({ bytes: FLOW_BYTES, sha256: upSha });

      sampling = false;
      await sampler;
      const growth = peak - baseline;
      console.info(
        `figure: backpressure: stack RSS baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB ` +
          `(+${(growth / MiB).toFixed(1)} MiB); writer ahead of reader at most ${(maxAhead / MiB).toFixed(1)} MiB ` +
          `(customer→platform, ${(downMs / 1000).toFixed(1)} s) and ${(maxAheadUp / MiB).toFixed(1)} MiB ` +
          `(platform→customer, ${(upMs / 1000).toFixed(1)} s)`,
      );
      expect(maxAhead).toBeLessThan(IN_FLIGHT_BOUND);
      expect(maxAheadUp).toBeLessThan(IN_FLIGHT_BOUND);
      expect(growth).toBeLessThan(RSS_GROWTH_BOUND);
      expect(ssh.exit()).toBeUndefined();
    } finally {
      sampling = false;
      await sampler;
    }
  });
});

/** Echoes `bytes` through the tunnel (service role `E`) and checks they came back. */
async function echoThrough(port: number, bytes: number): Promise<void> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const payload = randomBytes(bytes);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve, reject) => {
    socket.once('end', () => resolve());
    socket.once('error', reject);
  });
  socket.write('E');
  socket.end(payload);
  await ended;
  socket.destroy();
  if (!Buffer.concat(chunks).equals(payload)) throw new Error('warm-up echo came back different');
}

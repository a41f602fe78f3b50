/**
 * The reverse-tunnel endpoint offers only what it completes (issue 13). Every key exchange, host
 * key, cipher, MAC, compression and login signature algorithm of shared/ssh-algorithms.ts, the
 * lists the endpoint configures ssh2 with, is negotiated end to end here: one login per method,
 * holding the tunnel's forward, with bytes echoed through `connect`. OpenSSH drives each method it
 * is offered (clients with AES-GCM are offered only AES-GCM); ssh2's client drives the rest. A new
 * entry that no client here negotiates fails its cell. ssh-audit then reads what each of the two
 * sets advertises, and finds nothing it would not also find on a stock OpenSSH sshd.
 */

import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../shared/schemas';
import {
  CIPHERS_BY_PROFILE,
  COMPRESSION_ALGORITHMS,
  HOST_KEY_ALGORITHMS,
  KEX_ALGORITHMS,
  MAC_ALGORITHMS,
  USER_KEY_SIGNATURE_ALGORITHMS,
  withPostQuantum,
} from '../../shared/ssh-algorithms';
import { Bastion } from '../helpers/bastion';
import { requireTools, sshKeygen } from '../helpers/customer';
import { type EchoServer, echoRoundTrip, startEchoServer } from '../helpers/echo';
import { createReverseWhenAvailable, startTestStack, type TestStack } from '../helpers/gateway-stack';
import { holdReverseForward, hostKeyOf } from '../helpers/ssh-client';
import { withTimeout } from '../helpers/wait-for';

/** Generous: a cell takes a second or two, but CI machines are shared and slow to start processes. */
const CELL_TIMEOUT_MS = 120_000;

type Category = 'kex' | 'hostKey' | 'cipher' | 'mac' | 'compression' | 'signature';
interface Cell {
  category: Category;
  name: string;
}

const unique = (names: readonly string[]) => [...new Set(names)];
const CELLS: Cell[] = [
  ...KEX_ALGORITHMS.map((name) => ({ category: 'kex' as const, name })),
  ...HOST_KEY_ALGORITHMS.map((name) => ({ category: 'hostKey' as const, name })),
  ...unique([...CIPHERS_BY_PROFILE['aes-gcm'], ...CIPHERS_BY_PROFILE.compatible]).map((name) => ({
    category: 'cipher' as const,
    name,
  })),
  ...MAC_ALGORITHMS.map((name) => ({ category: 'mac' as const, name })),
  ...COMPRESSION_ALGORITHMS.map((name) => ({ category: 'compression' as const, name })),
  ...USER_KEY_SIGNATURE_ALGORITHMS.map((name) => ({ category: 'signature' as const, name })),
];

/** `ssh -Q <query>` per category: what this OpenSSH can be told to use. */
const OPENSSH_QUERY: Record<Category, string> = {
  kex: 'kex',
  hostKey: 'key-sig',
  cipher: 'cipher',
  mac: 'mac',
  compression: 'compression',
  signature: 'sig',
};
const opensshKnows = (category: Category) =>
  new Set(spawnSync('ssh', ['-Q', OPENSSH_QUERY[category]], { encoding: 'utf8' }).stdout.split('\n'));

/**
 * The `-o` that makes OpenSSH use exactly this method, or undefined when OpenSSH cannot be made to
 * negotiate it with the endpoint: it lacks the method, or (ciphers other than AES-GCM, and with
 * them every MAC) the endpoint never offers it to OpenSSH.
 */
function opensshOptions({ category, name }: Cell): string[] | undefined {
  if (!opensshKnows(category).has(name)) return undefined;
  switch (category) {
    case 'kex':
      return ['-o', `KexAlgorithms=${name}`];
    case 'hostKey':
      return ['-o', `HostKeyAlgorithms=${name}`];
    case 'cipher':
      return CIPHERS_BY_PROFILE['aes-gcm'].includes(name) ? ['-o', `Ciphers=${name}`] : undefined;
    case 'mac':
      return undefined;
    case 'compression':
      if (name === 'none') return ['-o', 'Compression=no'];
      return name === 'zlib@openssh.com' ? ['-o', 'Compression=yes'] : undefined;
    case 'signature':
      return ['-o', `PubkeyAcceptedAlgorithms=${name}`];
  }
}

/** The same for ssh2's client, which the endpoint offers the compatible set (it cannot choose how to sign). */
function ssh2Algorithms({ category, name }: Cell): ssh2.Algorithms | undefined {
  const one = [name] as never[];
  switch (category) {
    case 'kex':
      return { kex: one };
    case 'hostKey':
      return { serverHostKey: one };
    case 'cipher':
      return { cipher: one };
    case 'mac':
      return { cipher: ['aes128-ctr'], hmac: one };
    case 'compression':
      return { compress: one };
    case 'signature':
      return undefined;
  }
}

/** One customer key per type, shared by the tunnels that need that type (each cell has its own tunnel). */
const keys = new Map<string, ReturnType<typeof sshKeygen>>();
function keyOf(type: 'ed25519' | 'rsa' | 'ecdsa', bits?: number) {
  const name = `${type} ${bits ?? ''}`;
  const key = keys.get(name) ?? sshKeygen(type, bits);
  keys.set(name, key);
  return key;
}

/** The customer key a signature algorithm needs; ed25519 for every other cell. */
function keyFor({ category, name }: Cell) {
  if (category !== 'signature') return keyOf('ed25519');
  const ecdsa = /^ecdsa-sha2-nistp(\d+)$/.exec(name);
  if (ecdsa) return keyOf('ecdsa', Number(ecdsa[1]));
  if (name === 'ssh-ed25519') return keyOf('ed25519');
  return keyOf('rsa', 3072);
}

/** The field of the endpoint's `ssh login algorithms` line that names the cell's method. */
const LOG_FIELD: Record<Category, string> = {
  kex: 'kex',
  hostKey: 'hostKey',
  cipher: 'cipher',
  mac: 'mac',
  compression: 'compression',
  signature: 'signature',
};

/** What `ssh -v` prints once the method is chosen. */
function opensshSays({ category, name }: Cell): RegExp | undefined {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  switch (category) {
    case 'kex':
      return new RegExp(`kex: algorithm: ${escaped}\\b`);
    case 'hostKey':
      return new RegExp(`kex: host key algorithm: ${escaped}\\b`);
    case 'cipher':
      return new RegExp(`kex: client->server cipher: ${escaped} MAC: <implicit>`);
    case 'compression':
      return new RegExp(`kex: server->client cipher: \\S+ MAC: \\S+ compression: ${escaped}\\b`);
    default:
      return undefined;
  }
}

interface SshRun {
  child: ChildProcess;
  stderr(): string;
  stop(): Promise<void>;
}

function startSsh(args: string[]): SshRun {
  const child = spawn('ssh', args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 1024 * 1024) stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return {
    child,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        process.kill(-child.pid, 'SIGKILL');
      }
      await withTimeout(exited, 10_000, 'ssh exit');
    },
  };
}

/** ssh-audit's JSON of an endpoint; `port` of the endpoint or of a proxy in front of it. */
function sshAudit(port: number, format: '-j' | '-n'): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'ssh-audit',
      [format, '-t', '10', '-p', String(port), '127.0.0.1'],
      { timeout: 60_000 },
      (err, stdout) => {
        // ssh-audit exits 1 to 3 when it has warnings or failures to report: the output is the result.
        if (stdout.trim() === '') reject(err ?? new Error('ssh-audit printed nothing'));
        else resolve(stdout);
      },
    );
  });
}

const AuditSchema = (json: string) => {
  const audit = JSON.parse(json) as {
    kex?: { algorithm: string }[];
    key?: { algorithm: string }[];
    enc?: string[];
    mac?: string[];
    compression?: string[];
  };
  return {
    kex: (audit.kex ?? []).map((k) => k.algorithm),
    key: (audit.key ?? []).map((k) => k.algorithm),
    enc: audit.enc ?? [],
    mac: audit.mac ?? [],
    compression: audit.compression ?? [],
  };
};

/**
 * ssh-audit's verdicts (`[fail]` and `[warn]` lines) as `(kex) name: reason`, leaving out "unknown
 * algorithm": this ssh-audit (2.5.0) predates some names, and not knowing one is no verdict on it.
 */
function findings(text: string): Set<string> {
  const out = new Set<string>();
  let current = '';
  for (const line of text.split('\n')) {
    const head = /^\((\w+)\) (\S+)/.exec(line);
    if (head) current = `(${head[1]}) ${head[2]}`;
    const verdict = /-- \[(fail|warn)\] (.+?)\s*$/.exec(line);
    if (verdict && current && !/^\((gen|fin|rec|nfo)\)/.test(current) && verdict[2] !== 'unknown algorithm') {
      out.add(`${current}: [${verdict[1]}] ${verdict[2]}`);
    }
  }
  return out;
}

/** A proxy that introduces its clients to the endpoint as `identification` instead of their own line. */
async function identityProxy(target: number, identification: string): Promise<Server> {
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    let head = Buffer.alloc(0);
    let replaced = false;
    client.on('data', (chunk: Buffer) => {
      if (replaced) {
        upstream.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const lineEnd = head.indexOf(0x0a);
      if (lineEnd === -1) return;
      replaced = true;
      upstream.write(`${identification}\r\n`);
      upstream.write(head.subarray(lineEnd + 1));
    });
    upstream.pipe(client);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

describe('the SSH endpoint completes every algorithm it offers', () => {
  let stack: TestStack;
  let echo: EchoServer;
  let dir: string;

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'ssh-audit');
    dir = await mkdtemp(join(tmpdir(), 'tk-algorithms-'));
    [stack, echo] = await Promise.all([startTestStack({ portRange: '13000-13299' }), startEchoServer()]);
  });

  afterAll(async () => {
    await echo?.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.concurrent.for(CELLS)(
    'negotiates $category $name end to end',
    { timeout: CELL_TIMEOUT_MS },
    async (cell, { expect }) => {
      const label = `${cell.category} ${cell.name}`;
      const key = await keyFor(cell);
      const tunnel: Tunnel = await createReverseWhenAvailable(
        stack,
        { host: '127.0.0.1', port: echo.port },
        key.publicKey,
      );
      const reverse = tunnel.reverse;
      if (!reverse) throw new Error('no reverse block');
      const options = opensshOptions(cell);
      const algorithms = options ? undefined : ssh2Algorithms(cell);
      if (!options && !algorithms) {
        throw new Error(
          `${label}: neither OpenSSH nor ssh2's client here can negotiate it; add a client that can`,
        );
      }
      let stop: () => Promise<void> | void;
      let clientSaid = '';
      if (options) {
        const keyFile = join(dir, `${tunnel.id}.key`);
        const knownHosts = join(dir, `${tunnel.id}.known_hosts`);
        await writeFile(keyFile, key.privateKey, { mode: 0o600 });
        await writeFile(knownHosts, `${reverse.knownHostsLine}\n`);
        const ssh = startSsh([
          '-F',
          '/dev/null',
          '-v',
          '-N',
          '-T',
          '-p',
          String(reverse.sshPort),
          '-i',
          keyFile,
          '-o',
          'IdentitiesOnly=yes',
          '-o',
          'BatchMode=yes',
          '-o',
          'StrictHostKeyChecking=yes',
          '-o',
          `UserKnownHostsFile=${knownHosts}`,
          '-o',
          'GlobalKnownHostsFile=/dev/null',
          '-o',
          'ExitOnForwardFailure=yes',
          ...options,
          '-R',
          `${reverse.remotePort}:127.0.0.1:${echo.port}`,
          `${tunnel.id}@${reverse.sshHost}`,
        ]);
        stop = ssh.stop;
        clientSaid = 'ssh -v said:\n';
        await stack
          .waitForLog((l) => l.msg === 'reverse forward granted' && l.tunnelId === tunnel.id, 20_000)
          .catch(async (err: Error) => {
            await ssh.stop();
            throw new Error(`${err.message}\n${ssh.stderr().slice(-3000)}`);
          });
        clientSaid += ssh.stderr();
      } else {
        const held = await holdReverseForward({
          port: reverse.sshPort,
          hostKey: hostKeyOf(reverse.knownHostsLine),
          username: tunnel.id,
          privateKey: key.privateKey,
          bindPort: reverse.remotePort,
          target: { host: '127.0.0.1', port: echo.port },
          algorithms,
          timeoutMs: 20_000,
        }).catch((err: Error) => {
          // ssh2 throws this for a name it does not know: no client here can negotiate the method.
          if (/Unsupported algorithm/.test(err.message)) {
            throw new Error(
              `${label}: neither OpenSSH nor ssh2's client here can negotiate it; add a client that can`,
            );
          }
          throw err;
        });
        stop = held.close;
        const n = held.negotiated;
        const said: Record<Category, string> = {
          kex: n.kex,
          hostKey: n.serverHostKey,
          cipher: n.cs.cipher,
          mac: n.cs.mac,
          compression: n.cs.compress,
          signature: '',
        };
        expect(said[cell.category], "ssh2's client negotiated").toBe(cell.name);
      }
      try {
        const trip = await echoRoundTrip('127.0.0.1', reverse.remotePort, 256 * 1024, 20_000);
        expect(trip.receivedSha256, 'bytes through the tunnel').toBe(trip.sentSha256);
        const line = stack.logsWith({ msg: 'ssh login algorithms', tunnelId: tunnel.id });
        expect(line, 'one login').toHaveLength(1);
        expect(line[0]?.[LOG_FIELD[cell.category]], 'what the endpoint negotiated').toBe(cell.name);
        expect(line[0]?.profile).toBe(options ? 'aes-gcm' : 'compatible');
        const says = options ? opensshSays(cell) : undefined;
        if (says) expect(clientSaid).toMatch(says);
      } finally {
        await stop();
      }
    },
  );

  it('advertises to ssh-audit exactly those lists, in both sets, with no compression before login', async () => {
    const proxy = await identityProxy(stack.sshPort, 'SSH-2.0-dropbear_2022.83');
    try {
      const address = proxy.address();
      if (!address || typeof address !== 'object') throw new Error('proxy has no port');
      // ssh-audit introduces itself as OpenSSH 8.2: it gets the AES-GCM set; as Dropbear, the other.
      const [gcm, compatible] = (
        await Promise.all([sshAudit(stack.sshPort, '-j'), sshAudit(address.port, '-j')])
      ).map(AuditSchema);
      for (const [audit, ciphers] of [
        [gcm, CIPHERS_BY_PROFILE['aes-gcm']],
        [compatible, CIPHERS_BY_PROFILE.compatible],
      ] as const) {
        expect(audit?.kex).toEqual([...withPostQuantum(KEX_ALGORITHMS), 'kex-strict-s-v00@openssh.com']);
        expect(audit?.key).toEqual(HOST_KEY_ALGORITHMS);
        expect(audit?.enc).toEqual(ciphers);
        expect(audit?.mac).toEqual(MAC_ALGORITHMS);
        expect(audit?.compression).toEqual(['none']);
      }
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('finds nothing ssh-audit would not also find on a stock OpenSSH sshd', async () => {
    const bastion = await Bastion.start();
    const proxy = await identityProxy(stack.sshPort, 'SSH-2.0-dropbear_2022.83');
    try {
      const address = proxy.address();
      if (!address || typeof address !== 'object') throw new Error('proxy has no port');
      const [ours, oursCompatible, sshd] = await Promise.all([
        sshAudit(stack.sshPort, '-n'),
        sshAudit(address.port, '-n'),
        sshAudit(bastion.port, '-n'),
      ]);
      const stock = findings(sshd);
      // The comparison has teeth: sshd draws verdicts (its NIST curves, its SHA-1 and UMAC-64 MACs).
      expect(stock.size).toBeGreaterThan(3);
      const worse = [...findings(ours), ...findings(oursCompatible)].filter((f) => !stock.has(f));
      expect(worse).toEqual([]);
      expect(ours).toMatch(/\(gen\) compression: disabled/);
      expect(sshd).toMatch(/\(gen\) compression: enabled \(zlib@openssh.com\)/);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
      await bastion.dispose();
    }
  });
});

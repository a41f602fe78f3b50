/**
 * `GET /v1/info` against the SSH endpoint it describes, on the local stack: real OpenSSH trusts
 * the endpoint with nothing but `hostKeys[].knownHostsLine` (strict host key checking) and sees the
 * fingerprint the API states, and the algorithm lists `algorithms` states are what the endpoint's
 * key exchange offers, as OpenSSH prints them (`ssh -vv`) and as read off the wire for a client
 * that gets the wider set (an identification the endpoint does not know to have AES-GCM).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServiceInfo, ServiceInfoSchema } from '../../shared/schemas';
import { requireTools } from '../helpers/customer';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import { kexinitLists, rawSsh } from '../helpers/raw-ssh';

/**
 * Names in a KEXINIT that are signals, not algorithms: strict key exchange (the Terrapin
 * countermeasure, OpenSSH's PROTOCOL) and RFC 8308's extension negotiation. A client never
 * negotiates them, so `/v1/info` does not list them.
 */
const SIGNALS = /^(kex-strict-[cs]-v00@openssh\.com|ext-info-[cs])$/;
const algorithmsOnly = (names: string[]) => names.filter((name) => !SIGNALS.test(name));

interface OpensshView {
  output: string;
  /** The peer's KEXINIT as `ssh -vv` prints it: `debug2: <label>: a,b,c` after "peer server KEXINIT proposal". */
  proposal: Map<string, string[]>;
}

/** `ssh -vv` to the endpoint as no tunnel's user, host key checked against `knownHosts` only. */
function opensshProbe(port: number, knownHosts: string): Promise<OpensshView> {
  const args = [
    '-vv',
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'PubkeyAuthentication=no',
    '-o',
    'GSSAPIAuthentication=no',
    // The known_hosts line names the public host (`localhost`); the stack listens on IPv4 only.
    '-o',
    'AddressFamily=inet',
    '-p',
    String(port),
    'probe@localhost',
    'true',
  ];
  return new Promise((resolve) => {
    execFile('ssh', args, { timeout: 20_000 }, (_err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      const proposal = new Map<string, string[]>();
      const start = output.indexOf('peer server KEXINIT proposal');
      for (const line of output.slice(start).split('\n').slice(1)) {
        const match = /^debug2: ([^:]+): (.*)$/.exec(line.trim());
        if (!match?.[1] || match[2] === undefined) break;
        proposal.set(match[1], match[2] === '' ? [] : match[2].split(','));
      }
      resolve({ output, proposal });
    });
  });
}

describe.concurrent('GET /v1/info against the running endpoint', () => {
  let stack: TestStack;
  let info: ServiceInfo;
  let scratch: string;

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen');
    scratch = await mkdtemp(join(tmpdir(), 'tk-info-e2e-'));
    stack = await startTestStack({
      portRange: '18100-18199',
      env: { EGRESS_IPS: '198.51.100.20,198.51.100.21' },
    });
    const res = await fetch(`${stack.baseUrl}/v1/info`);
    expect(res.status).toBe(200);
    info = ServiceInfoSchema.strict().parse(await res.json());
  });

  afterAll(async () => {
    await stack?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('names the endpoint as customers dial it and the configured egress IPs', () => {
    expect(info.sshEndpoint).toMatchObject({ host: 'localhost', port: stack.sshPort });
    expect(info.egressIps).toEqual(['198.51.100.20', '198.51.100.21']);
  });

  it('gives the known_hosts line OpenSSH trusts the endpoint with, and its fingerprint', async () => {
    const [hostKey] = info.sshEndpoint.hostKeys;
    const knownHosts = join(scratch, 'known_hosts');
    await writeFile(knownHosts, `${hostKey?.knownHostsLine}\n`);
    const { output } = await opensshProbe(stack.sshPort, knownHosts);
    expect(output).toContain(`Server host key: ${hostKey?.type} ${hostKey?.fingerprint}`);
    expect(output).toMatch(/is known and matches the ED25519 host key/);
    // Past the host key check: only the login (no key offered) is refused.
    expect(output).toMatch(/Permission denied \(publickey\)/);
    expect(output).not.toMatch(/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/);
  });

  it('states what OpenSSH is offered: every key exchange, host key and MAC, and the AES-GCM ciphers', async () => {
    const { proposal, output } = await opensshProbe(stack.sshPort, '/dev/null');
    expect(proposal.size, output).toBeGreaterThanOrEqual(8);
    expect(algorithmsOnly(proposal.get('KEX algorithms') ?? [])).toEqual(info.algorithms.kex);
    expect(proposal.get('host key algorithms')).toEqual(info.algorithms.hostKey);
    expect(proposal.get('MACs ctos')).toEqual(info.algorithms.mac);
    expect(proposal.get('MACs stoc')).toEqual(info.algorithms.mac);
    const ciphers = proposal.get('ciphers ctos') ?? [];
    expect(proposal.get('ciphers stoc')).toEqual(ciphers);
    // OpenSSH has AES-GCM: it is offered those alone, all of them in the stated list.
    expect(ciphers).toEqual(['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com']);
    expect(info.algorithms.cipher).toEqual(expect.arrayContaining(ciphers));
  });

  it('states exactly what a client without known AES-GCM is offered, off the wire', async () => {
    const raw = await rawSsh(stack.sshPort, 'SSH-2.0-dropbear_2022.83');
    try {
      const [kex, hostKey, cipherCs, cipherSc, macCs, macSc] = kexinitLists(await raw.readPacket(5_000));
      expect(algorithmsOnly(kex ?? [])).toEqual(info.algorithms.kex);
      expect(hostKey).toEqual(info.algorithms.hostKey);
      expect(cipherCs).toEqual(info.algorithms.cipher);
      expect(cipherSc).toEqual(info.algorithms.cipher);
      expect(macCs).toEqual(info.algorithms.mac);
      expect(macSc).toEqual(info.algorithms.mac);
    } finally {
      raw.destroy();
    }
  });
});

/**
 * Post-quantum hybrid key exchange at the reverse endpoint (issue 13, acceptance 2), with clients
 * nobody here wrote: Debian 12's OpenSSH 9.2 (sntrup761x25519, under both names), OpenSSH 10.0
 * from bookworm-backports (mlkem768x25519-sha256, its default) and PuTTY 0.78 (its own NTRU Prime
 * code). Each OpenSSH cell runs the customer's command verbatim but for `-v` and carries bytes
 * through the tunnel. Malformed client keys, sent by hand, are refused with SSH_MSG_DISCONNECT
 * (key exchange failed) and a log line, and the endpoint goes on serving.
 */
import { createHash } from 'node:crypto';
import { access, constants } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POST_QUANTUM_KEX } from '../../fargate/pq-kex/post-quantum-kex';
import type { Tunnel } from '../../shared/schemas';
import { KEX_ALGORITHMS } from '../../shared/ssh-algorithms';
import { requireTools, reverseTunnelWithCustomer } from '../helpers/customer';
import { type EchoServer, echoRoundTrip, startEchoServer } from '../helpers/echo';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import {
  kexinitLists,
  kexinitPayload,
  parseDisconnect,
  rawSsh,
  SSH_MSG,
  sshString,
} from '../helpers/raw-ssh';
import { hostKeyOf } from '../helpers/ssh-client';
import { OPENSSH_MLKEM, opensshKex, probeOpensshKex, probePlinkKex } from '../helpers/ssh-kex';

const KiB = 1024;
const KEY_EXCHANGE_FAILED = 3; // RFC 4253 §11.1
const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

describe('post-quantum key exchange at the reverse endpoint', () => {
  let stack: TestStack;
  let echo: EchoServer;

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'plink', 'runuser', 'useradd', 'userdel');
    await access(OPENSSH_MLKEM, constants.X_OK).catch(() => {
      throw new Error(`${OPENSSH_MLKEM} is missing: run .ci/openssh-backport (.ci/run does)`);
    });
    stack = await startTestStack({ portRange: '16000-16499', heartbeatIntervalMs: 1_000 });
    echo = await startEchoServer();
  });

  afterAll(async () => {
    await echo?.close();
    await stack?.stop();
  });

  it('offers the hybrids ahead of every classical method but the guess-proof first one', async () => {
    const raw = await rawSsh(stack.sshPort);
    try {
      const [kex] = kexinitLists(await raw.readPacket(5_000));
      // The first entry is one no guessing client lists first (shared/ssh-algorithms.ts says why).
      expect(kex?.[0]).toBe(KEX_ALGORITHMS[0]);
      expect(kex?.slice(1, 1 + POST_QUANTUM_KEX.length)).toEqual([...POST_QUANTUM_KEX]);
      expect(kex?.[1]).toBe('mlkem768x25519-sha256');
      expect(kex).toContain('sntrup761x25519-sha512@openssh.com');
      expect(kex).toContain('curve25519-sha256'); // classical clients still get in
    } finally {
      raw.destroy();
    }
  });

  describe.concurrent('carries a reverse tunnel', () => {
    // RekeyLimit makes the client key again every 256 KiB: a long-lived tunnel (CDC, replication)
    // rekeys with the same method, and the server must answer each one.
    it.each([
      { client: 'OpenSSH 9.2', ssh: 'ssh', option: '-o RekeyLimit=256K', kex: 'sntrup761x25519-sha512' },
      {
        client: 'OpenSSH 9.2',
        ssh: 'ssh',
        option: '-o KexAlgorithms=sntrup761x25519-sha512@openssh.com',
        kex: 'sntrup761x25519-sha512@openssh.com',
      },
      {
        client: 'OpenSSH 10.0',
        ssh: OPENSSH_MLKEM,
        option: '-o RekeyLimit=256K',
        kex: 'mlkem768x25519-sha256',
      },
    ])('$client $option: ssh -v shows $kex, and bytes flow', async ({ ssh, option, kex }) => {
      const made = await reverseTunnelWithCustomer(stack.createReverse, {
        host: '127.0.0.1',
        port: echo.port,
      });
      try {
        const command = made.reverse.commands.ssh;
        expect(command.startsWith('ssh ')).toBe(true);
        const verbose = `${ssh} -v ${option} ${command.slice('ssh '.length)}`;
        const customerSsh = made.customer.start(verbose);
        const up = await stack.waitForTunnel(made.tunnel.id, isUp, 20_000, customerSsh.stderr);
        if (!up.connect) throw new Error('up without connect');
        const rekeying = option.includes('RekeyLimit');
        const bytes = rekeying ? 1024 * KiB : 64 * KiB;
        const trip = await echoRoundTrip(up.connect.host, up.connect.port, bytes, 15_000);
        expect(trip.receivedSha256).toBe(trip.sentSha256);
        expect(opensshKex(customerSsh.stderr())).toBe(kex);
        if (rekeying) {
          // 2 MiB through the session (both ways) at 256 KiB per key: several exchanges, all hybrid.
          const methods = [...customerSsh.stderr().matchAll(/^debug1: kex: algorithm: (\S+)$/gm)].map(
            (m) => m[1],
          );
          expect(methods.length, customerSsh.stderr()).toBeGreaterThanOrEqual(3);
          expect(new Set(methods)).toEqual(new Set([kex]));
        }
      } finally {
        // Each cell disposes of its own customer: the cells run at once, and a shared afterEach
        // would end the others' ssh when the first one finishes.
        await made.customer.dispose();
      }
    });
  });

  it('PuTTY 0.78 completes its NTRU Prime / Curve25519 hybrid with the endpoint', async () => {
    const made = await stack.createReverse({ host: '127.0.0.1', port: echo.port });
    if (!made.reverse) throw new Error('no reverse block');
    const blob = hostKeyOf(made.reverse.knownHostsLine);
    const fingerprint = `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
    const probe = await probePlinkKex({ port: stack.sshPort, hostKeyFingerprint: fingerprint });
    expect(probe.kex, probe.output).toBe('NTRU Prime / Curve25519 hybrid key exchange');
    // Past the key exchange: the host key verified against the pinned one, then authentication.
    expect(probe.output).toContain('Using username "probe"');
  });

  describe.concurrent('refuses a malformed client key with a disconnect and a log line', () => {
    const sntrupInit = 1158 + 32;
    it.each([
      {
        what: 'a sntrup761x25519 key one byte short',
        kex: 'sntrup761x25519-sha512@openssh.com',
        blob: () => Buffer.alloc(sntrupInit - 1, 0x42),
        reason: `client's sntrup761x25519 public key is ${sntrupInit - 1} bytes, expected ${sntrupInit}`,
      },
      {
        what: 'an oversized key',
        kex: 'sntrup761x25519-sha512',
        blob: () => Buffer.alloc(30_000, 0x42),
        reason: `client's sntrup761x25519 public key is 30000 bytes, expected ${sntrupInit}`,
      },
      {
        what: 'an ML-KEM key with unreduced coefficients',
        kex: 'mlkem768x25519-sha256',
        blob: () => Buffer.concat([Buffer.alloc(1184, 0xff), Buffer.alloc(32, 9)]),
        reason: "client's ML-KEM-768 public key is not valid",
      },
      {
        what: 'an all-zero X25519 half',
        kex: 'sntrup761x25519-sha512',
        blob: () => Buffer.concat([Buffer.alloc(1158, 0x42), Buffer.alloc(32)]),
        reason: "client's X25519 public key is not usable",
      },
    ])('$what', async ({ kex, blob, reason }) => {
      const raw = await rawSsh(stack.sshPort);
      try {
        const serverLists = kexinitLists(await raw.readPacket(5_000));
        raw.send(
          kexinitPayload({
            kex: [kex],
            hostKey: serverLists[1] ?? [],
            cipher: ['aes128-gcm@openssh.com'],
            mac: ['hmac-sha2-256'],
          }),
        );
        raw.send(Buffer.concat([Buffer.from([SSH_MSG.KEX_ECDH_INIT]), sshString(blob())]));
        const answer = await raw.readPacket(5_000);
        expect(answer[0]).toBe(SSH_MSG.DISCONNECT);
        expect(parseDisconnect(answer).reason).toBe(KEY_EXCHANGE_FAILED);
        await raw.closed;
      } finally {
        raw.destroy();
      }
      const line = await stack.waitForLog(
        (l) => l.msg === 'ssh connection error' && String(l.reason).includes(reason),
        5_000,
      );
      expect(line.level).toBe('info');
      expect(String(line.reason)).not.toMatch(/\n\s+at /); // a reason, not a stack trace
    });
  });

  it('goes on serving after the malformed keys', async () => {
    const probe = await probeOpensshKex({ port: stack.sshPort });
    expect(probe.kex, probe.output).toBe('sntrup761x25519-sha512');
    expect(probe.output).toMatch(/Permission denied \(publickey\)/);
  });
});

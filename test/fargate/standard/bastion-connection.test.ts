import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BastionConnectOptions,
  type BastionCredentials,
  connectToBastion,
  TunnelFailure,
} from '../../../fargate/standard/bastion-connection';
import { freePort } from '../../../local/free-port';
import { authorizedKeysLine, generateKeyPair, type KeyType, parsePrivateKey } from '../../../shared/keys';
import { Bastion } from '../../helpers/bastion';

const options: BastionConnectOptions = {
  allowPrivateHosts: true,
  readyTimeoutMs: 5_000,
  keepaliveIntervalMs: 5_000,
  keepaliveCountMax: 3,
};

/** The status error a connection attempt ends with (or `up`). */
async function outcome(
  target: { host: string; port: number; user: string; hostKeyFingerprint?: string },
  credentials: BastionCredentials,
  service: { host: string; port: number },
  opts: BastionConnectOptions = options,
): Promise<{ code: string; message: string; hint: string } | 'up'> {
  try {
    const conn = await connectToBastion(target, credentials, opts);
    try {
      const channel = await conn.forward(service, { ip: '127.0.0.1', port: 0 });
      channel.destroy();
      return 'up';
    } finally {
      conn.close();
    }
  } catch (err) {
    if (err instanceof TunnelFailure) return err.status;
    throw err;
  }
}

describe('connecting to a real OpenSSH bastion', () => {
  let bastion: Bastion;
  let service: Server;
  let servicePort: number;
  const password = 'Tr0ub4dor&3-bastion';

  beforeAll(async () => {
    bastion = await Bastion.start({ password });
    service = createServer((s) => s.end('hello\n'));
    await new Promise<void>((r) => service.listen(0, '127.0.0.1', r));
    servicePort = (service.address() as { port: number }).port;
  });
  afterAll(async () => {
    await bastion.dispose();
    service.close();
  });

  const target = () => ({ host: '127.0.0.1', port: bastion.port, user: bastion.user });
  const svc = () => ({ host: '127.0.0.1', port: servicePort });

  // OpenSSH 9 accepts RSA only with rsa-sha2-256/512 signatures, so the rsa case proves we sign with them.
  it.each<[KeyType]>([['ed25519'], ['rsa'], ['ecdsa']])(
    'a generated %s key with the restricted authorizedKeysLine connects and forwards',
    async (type) => {
      const pair = await generateKeyPair(type, 'test');
      await bastion.setAuthorizedKeys([authorizedKeysLine(pair.publicKey, svc())]);
      const conn = await connectToBastion(target(), { keys: [pair] }, options);
      expect(conn.authenticatedWith).toBe(pair.fingerprint);
      expect(conn.hostKeyFingerprint).toBe(bastion.hostKeyFingerprint());
      const channel = await conn.forward(svc(), { ip: '127.0.0.1', port: 0 });
      const data = await new Promise<string>((resolve) => {
        let text = '';
        channel.on('data', (d: Buffer) => (text += d.toString()));
        channel.on('end', () => resolve(text));
      });
      expect(data).toBe('hello\n');
      conn.close();
    },
  );

  it('a customer key with a passphrase connects', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tk-pass-'));
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'open sesame', '-f', join(dir, 'k')]);
      const parsed = parsePrivateKey(readFileSync(join(dir, 'k'), 'utf8'), 'open sesame', 'auth.privateKey');
      await bastion.setAuthorizedKeys([parsed.publicKey]);
      const key = {
        privateKey: parsed.privateKey,
        passphrase: 'open sesame',
        fingerprint: parsed.fingerprint,
      };
      expect(await outcome(target(), { keys: [key] }, svc())).toBe('up');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('password authentication connects, after a key the bastion does not know', async () => {
    const stranger = await generateKeyPair('ed25519', 'stranger');
    await bastion.setAuthorizedKeys([]);
    const conn = await connectToBastion(target(), { keys: [stranger], password }, options);
    expect(conn.authenticatedWith).toBe('password');
    conn.close();
  });

  it('tries the newest key first and falls back to the previous one', async () => {
    const [next, previous] = await Promise.all([
      generateKeyPair('ed25519', 'n'),
      generateKeyPair('ed25519', 'p'),
    ]);
    await bastion.setAuthorizedKeys([previous.publicKey]);
    const conn = await connectToBastion(target(), { keys: [next, previous] }, options);
    expect(conn.authenticatedWith).toBe(previous.fingerprint);
    conn.close();
    await bastion.setAuthorizedKeys([next.publicKey, previous.publicKey]);
    const again = await connectToBastion(target(), { keys: [next, previous] }, options);
    expect(again.authenticatedWith).toBe(next.fingerprint);
    again.close();
  });

  describe('failures, each with its own code, message and hint', () => {
    let key: Awaited<ReturnType<typeof generateKeyPair>>;
    beforeAll(async () => {
      key = await generateKeyPair('ed25519', 'k');
    });

    it('wrong key → auth_failed naming the user', async () => {
      await bastion.setAuthorizedKeys([(await generateKeyPair('ed25519', 'other')).publicKey]);
      const result = await outcome(target(), { keys: [key] }, svc());
      expect(result).toMatchObject({ code: 'auth_failed', message: expect.stringContaining(bastion.user) });
      expect(result !== 'up' && result.hint).toMatch(/authorized_keys/);
    });

    it('wrong user → auth_failed', async () => {
      await bastion.setAuthorizedKeys([key.publicKey]);
      const result = await outcome({ ...target(), user: 'nobody-here' }, { keys: [key] }, svc());
      expect(result).toMatchObject({ code: 'auth_failed', message: expect.stringContaining('nobody-here') });
    });

    it('nothing listening → ssh_refused', async () => {
      const port = await freePort();
      const result = await outcome({ ...target(), port }, { keys: [key] }, svc());
      expect(result).toMatchObject({
        code: 'ssh_refused',
        message: expect.stringContaining(`127.0.0.1:${port}`),
      });
    });

    it('a server that never speaks SSH → ssh_unreachable after the ready timeout', async () => {
      const silent = createServer(() => {});
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      try {
        const port = (silent.address() as { port: number }).port;
        const result = await outcome({ ...target(), port }, { keys: [key] }, svc(), {
          ...options,
          readyTimeoutMs: 500,
        });
        expect(result).toMatchObject({ code: 'ssh_unreachable' });
      } finally {
        silent.close();
      }
    });

    it('a name that does not resolve → ssh_dns_failed', async () => {
      const result = await outcome({ ...target(), host: 'no-such-host.invalid' }, { keys: [key] }, svc());
      expect(result).toMatchObject({
        code: 'ssh_dns_failed',
        message: expect.stringContaining('no-such-host.invalid'),
      });
    });

    it('a changed host key → host_key_mismatch with both fingerprints, before authenticating', async () => {
      await bastion.setAuthorizedKeys([key.publicKey]);
      const pinned = `SHA256:${'A'.repeat(43)}`;
      const result = await outcome({ ...target(), hostKeyFingerprint: pinned }, { keys: [key] }, svc());
      expect(result).toMatchObject({ code: 'host_key_mismatch' });
      expect(result !== 'up' && result.message).toContain(pinned);
      expect(result !== 'up' && result.message).toContain(bastion.hostKeyFingerprint());
      expect(bastion.output()).not.toMatch(new RegExp(`Accepted publickey for ${bastion.user}.*\\n.*$`));
    });

    it('permitopen to another port → forward_denied', async () => {
      await bastion.setAuthorizedKeys([authorizedKeysLine(key.publicKey, { host: '127.0.0.1', port: 1 })]);
      const result = await outcome(target(), { keys: [key] }, svc());
      expect(result).toMatchObject({
        code: 'forward_denied',
        message: expect.stringContaining(`127.0.0.1:${servicePort}`),
      });
    });

    it('service port closed behind the bastion → service_unreachable', async () => {
      await bastion.setAuthorizedKeys([key.publicKey]);
      const closed = await freePort();
      const result = await outcome(target(), { keys: [key] }, { host: '127.0.0.1', port: closed });
      expect(result).toMatchObject({
        code: 'service_unreachable',
        message: expect.stringContaining(`127.0.0.1:${closed}`),
      });
    });

    it('AllowTcpForwarding no → forward_denied', async () => {
      await bastion.setAuthorizedKeys([key.publicKey]);
      await bastion.reconfigure(['AllowTcpForwarding no']);
      try {
        expect(await outcome(target(), { keys: [key] }, svc())).toMatchObject({ code: 'forward_denied' });
      } finally {
        await bastion.reconfigure([]);
      }
    });
  });

  describe('SSRF guard', () => {
    it.each([
      ['127.0.0.1', 'loopback'],
      ['169.254.169.254', 'link-local'],
      ['10.0.0.1', 'private'],
      ['::1', 'loopback'],
      ['localhost', 'loopback'],
    ])('refuses %s with ssh_host_forbidden before any connection', async (host, kind) => {
      const key = await generateKeyPair('ed25519', 'k');
      const before = bastion.output().length;
      const result = await outcome({ ...target(), host }, { keys: [key] }, svc(), {
        ...options,
        allowPrivateHosts: false,
      });
      expect(result).toMatchObject({ code: 'ssh_host_forbidden', message: expect.stringContaining(kind) });
      expect(bastion.output().slice(before)).not.toMatch(/Connection from/);
    });
  });
});

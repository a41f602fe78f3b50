/**
 * What the reverse-tunnel endpoint refuses (issue 3, acceptance 4), each seen from Debian's
 * OpenSSH (exit code and message) and in our log (`reason`): wrong key, another tunnel's key,
 * password and keyboard-interactive, another -R port or a Unix socket, -L, -D and -J through the
 * endpoint, commands and shells, sftp, and agent forwarding.
 */
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../local/free-port';
import type { Tunnel } from '../../shared/schemas';
import { Customer, customerFor, requireTools, sshKeygen } from '../helpers/customer';
import { type EchoServer, startEchoServer } from '../helpers/echo';
import { type LogLine, startTestStack, type TestStack } from '../helpers/gateway-stack';
import { hostKeyOf, tryLogin } from '../helpers/ssh-client';
import { waitFor } from '../helpers/wait-for';

type Reverse = NonNullable<Tunnel['reverse']>;

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

/** The tunnel's ssh command with `-N` and `-R` removed (to run a command, a shell, -J...). */
const withoutForward = (r: Reverse) => r.commands.ssh.replace(/ -R \S+/, '').replace(' -N', '');
/** The tunnel's ssh command asking `-R <listen>:<service>` instead of its own tagged listen side. */
const forwardingFrom = (r: Reverse, listen: string) =>
  r.commands.ssh.replace(new RegExp(`-R tk-[0-9a-f]{8}:${r.remotePort}:`), `-R ${listen}:`);

describe('reverse-tunnel endpoint refusals, seen from OpenSSH and in our log', () => {
  let stack: TestStack;
  let echo: EchoServer;
  let tunnel: Tunnel & { reverse: Reverse };
  let other: Tunnel & { reverse: Reverse };
  let customer: Customer;
  const extraCustomers: Customer[] = [];

  /** Log lines written after `mark` (an index into stack.logs) that match `fields`. */
  const logsSince = (mark: number, fields: Record<string, unknown>): LogLine[] =>
    stack.logs.slice(mark).filter((line) => Object.entries(fields).every(([k, v]) => line[k] === v));

  const reverseTunnel = async (publicKey: string) => {
    const t = await stack.createReverse({ host: '127.0.0.1', port: echo.port }, publicKey);
    if (!t.reverse) throw new Error('no reverse block');
    return { ...t, reverse: t.reverse };
  };

  beforeAll(async () => {
    requireTools('ssh', 'sftp', 'ssh-agent', 'ssh-keygen', 'runuser', 'useradd', 'userdel', 'pgrep');
    stack = await startTestStack({ portRange: '22000-22999' });
    echo = await startEchoServer();
    const key = await sshKeygen('ed25519');
    tunnel = await reverseTunnel(key.publicKey);
    other = await reverseTunnel((await sshKeygen('ed25519')).publicKey);
    customer = await customerFor(tunnel, key.privateKey);
    // The same customer also holds its own key under the other tunnel's file name.
    await customer.installKey(other.id, key.privateKey);
  });

  afterEach(async () => {
    await Promise.all(extraCustomers.splice(0).map((c) => c.dispose()));
    // A test that left a session up would turn the next login into a takeover.
    await waitFor(() => stack.gateway.reverseTunnelCount === 0, 10_000, { what: 'no session left' });
  });

  afterAll(async () => {
    await customer?.dispose();
    await echo?.close();
    await stack?.stop();
  });

  it('refuses a key that is not the tunnel key: Permission denied (publickey)', async () => {
    const stranger = await Customer.create();
    extraCustomers.push(stranger);
    await stranger.installKey(tunnel.id, (await sshKeygen('ed25519')).privateKey);
    await stranger.trustHosts(tunnel.reverse.knownHostsLine);
    const mark = stack.logs.length;
    const result = await stranger.exec(tunnel.reverse.commands.ssh);
    expect(result.code).toBe(255);
    expect(result.stderr).toContain(`${tunnel.id}@localhost: Permission denied (publickey).`);
    const refused = logsSince(mark, { msg: 'ssh login refused', user: tunnel.id });
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((l) => l.method === 'publickey' && l.reason === "key is not the tunnel's key")).toBe(
      true,
    );
    expect(logsSince(mark, { msg: 'ssh login accepted' })).toEqual([]);
  });

  it("refuses another tunnel's key: Permission denied (publickey)", async () => {
    const mark = stack.logs.length;
    // `other`'s command verbatim, with `tunnel`'s key at ~/.ssh/tunnelkeeper_<other>.
    const result = await customer.exec(other.reverse.commands.ssh);
    expect(result.code).toBe(255);
    expect(result.stderr).toContain(`${other.id}@localhost: Permission denied (publickey).`);
    expect(logsSince(mark, { msg: 'ssh login refused', user: other.id }).map((l) => l.reason)).toContain(
      "key is not the tunnel's key",
    );
    expect(logsSince(mark, { msg: 'ssh login accepted' })).toEqual([]);
  });

  it('refuses logins as a user that is not a tunnel id', async () => {
    const mark = stack.logs.length;
    const result = await customer.exec(
      withoutForward(tunnel.reverse).replace(`${tunnel.id}@localhost`, 'root@localhost'),
    );
    expect(result.code).toBe(255);
    expect(result.stderr).toContain('root@localhost: Permission denied (publickey).');
    expect(logsSince(mark, { msg: 'ssh login refused' }).map((l) => l.reason)).toContain(
      'user is not a tunnel id',
    );
  });

  it('offers only publickey, and refuses password and keyboard-interactive from clients that insist', async () => {
    // OpenSSH only tries what the server lists: it gives up before sending a password.
    const openssh = await customer.exec(
      `${withoutForward(tunnel.reverse).replace('ssh ', 'ssh -v ')} ` +
        '-o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive -o BatchMode=yes true',
    );
    expect(openssh.code).toBe(255);
    expect(openssh.stderr).toMatch(/Authentications that can continue: publickey\r?\n/);
    expect(openssh.stderr).toContain(`${tunnel.id}@localhost: Permission denied (publickey).`);

    // ssh2's client sends them anyway: both refused and logged.
    const mark = stack.logs.length;
    const result = await tryLogin({
      port: stack.sshPort,
      hostKey: hostKeyOf(tunnel.reverse.knownHostsLine),
      methods: [
        { type: 'password', username: tunnel.id, password: 'hunter2-hunter2' },
        {
          type: 'keyboard-interactive',
          username: tunnel.id,
          prompt: (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => 'hunter2')),
        },
      ],
      timeoutMs: 10_000,
    });
    expect(result.ok).toBe(false);
    expect(result.error).toBe('All configured authentication methods failed');
    const refused = logsSince(mark, { msg: 'ssh login refused', user: tunnel.id });
    expect(refused.map((l) => [l.method, l.reason])).toEqual([
      ['password', 'password authentication is not allowed'],
      ['keyboard-interactive', 'keyboard-interactive authentication is not allowed'],
    ]);
    expect(JSON.stringify(stack.logs)).not.toContain('hunter2');
  });

  it.each([
    {
      name: '-R on another port (ExitOnForwardFailure makes ssh exit)',
      command: (r: Reverse) => forwardingFrom(r, String(r.remotePort + 1)),
      code: 255,
      stderr: (r: Reverse) => `Error: remote port forwarding failed for listen port ${r.remotePort + 1}`,
      what: 'tcpip-forward',
      reason: (r: Reverse) => `only -R ${r.remotePort}:... is allowed for this tunnel`,
    },
    {
      name: '-R 0 (a port of our choosing)',
      command: (r: Reverse) => forwardingFrom(r, '0'),
      code: 255,
      stderr: () => 'Error: remote port forwarding failed for listen port 0',
      what: 'tcpip-forward',
      reason: (r: Reverse) => `only -R ${r.remotePort}:... is allowed for this tunnel`,
    },
    {
      name: '-R of a Unix socket',
      command: (r: Reverse) => forwardingFrom(r, '/tmp/tunnelkeeper.sock'),
      code: 255,
      stderr: () => 'Error: remote port forwarding failed for listen path /tmp/tunnelkeeper.sock',
      what: 'streamlocal-forward@openssh.com',
      reason: () => "only the tunnel's tcpip-forward is allowed",
    },
    {
      name: 'ssh host command',
      command: (r: Reverse) => `${withoutForward(r)} cat /etc/passwd`,
      code: 1,
      stderr: (r: Reverse) =>
        `This endpoint only carries the reverse tunnel of ${r.sshUser}: run ssh with -N (no shell, no command)`,
      what: 'exec (cat /etc/passwd)',
      reason: () => 'sessions are not allowed; use ssh -N',
    },
    {
      name: 'an interactive shell',
      command: (r: Reverse) => `${withoutForward(r).replace(' -T', ' -tt')} < /dev/null`,
      code: 1,
      stderr: (r: Reverse) => `This endpoint only carries the reverse tunnel of ${r.sshUser}`,
      what: 'shell',
      reason: () => 'sessions are not allowed; use ssh -N',
    },
    {
      name: 'sftp',
      command: (r: Reverse) =>
        `sftp -b /dev/null -i ~/.ssh/tunnelkeeper_${r.sshUser} -P ${r.sshPort} -o IdentitiesOnly=yes ` +
        `-o StrictHostKeyChecking=yes ${r.sshUser}@${r.sshHost}`,
      code: 255,
      stderr: () => 'subsystem request failed on channel 0',
      what: 'subsystem sftp',
      reason: () => 'subsystems such as sftp are not allowed',
    },
  ])('refuses $name', async ({ command, code, stderr, what, reason }) => {
    const r = tunnel.reverse;
    const mark = stack.logs.length;
    const result = await customer.exec(command(r));
    expect(result.code).toBe(code);
    expect(result.stderr).toContain(stderr(r));
    expect(result.stdout).toBe('');
    const refused = await waitFor(
      () => logsSince(mark, { msg: 'ssh request refused', tunnelId: tunnel.id, what })[0],
      2_000,
      { what: `refusal of ${what} logged` },
    );
    expect(refused.reason).toBe(reason(r));
    // A refused -R never bound a listener, and the state never went up.
    expect(logsSince(mark, { msg: 'reverse forward granted' })).toEqual([]);
  });

  it('refuses agent forwarding (-A) and the command it came with', async () => {
    const mark = stack.logs.length;
    const result = await customer.exec(
      'eval "$(ssh-agent -s)" >/dev/null; ' +
        `${withoutForward(tunnel.reverse).replace('ssh ', 'ssh -v -A ')} 'ssh-add -l'; rc=$?; ` +
        'ssh-agent -k >/dev/null; exit $rc',
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Requesting authentication agent forwarding.');
    expect(result.stderr).toContain(`This endpoint only carries the reverse tunnel of ${tunnel.id}`);
    const refused = logsSince(mark, { msg: 'ssh request refused', tunnelId: tunnel.id });
    expect(refused.map((l) => [l.what, l.reason])).toEqual([
      ['agent forwarding', 'agent forwarding is not allowed'],
      ['exec (ssh-add -l)', 'sessions are not allowed; use ssh -N'],
    ]);
  });

  it('refuses -J through the endpoint: stdio forwarding failed', async () => {
    const r = tunnel.reverse;
    // -J passes no -i on to the jump connection: the jump host's identity comes from ~/.ssh/config.
    await customer.writeFile(
      '.ssh/config',
      [
        'Host tunnelkeeper-jump',
        `  HostName ${r.sshHost}`,
        `  Port ${r.sshPort}`,
        `  User ${r.sshUser}`,
        `  IdentityFile ~/.ssh/tunnelkeeper_${tunnel.id}`,
        '  IdentitiesOnly yes',
        '  StrictHostKeyChecking yes',
        '',
      ].join('\n'),
    );
    const mark = stack.logs.length;
    const result = await customer.exec(
      `ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -J tunnelkeeper-jump -p ${echo.port} someone@127.0.0.1 true`,
    );
    expect(result.code).toBe(255);
    // OpenSSH prints the reason we refused with, not "connect failed" as if the target were down.
    expect(result.stderr).toContain(
      'open failed: administratively prohibited: local (-L), dynamic (-D) and jump (-J) forwarding ' +
        "are not allowed; this endpoint only carries the tunnel's own -R",
    );
    expect(result.stderr).toContain('stdio forwarding failed');
    expect(echo.acceptedConnections).toBe(0);
    const refused = logsSince(mark, {
      msg: 'ssh request refused',
      tunnelId: tunnel.id,
      what: 'direct-tcpip',
    });
    expect(refused.map((l) => [l.destination, l.reason])).toEqual([
      [`127.0.0.1:${echo.port}`, 'local (-L), dynamic (-D) and jump (-J) forwarding are not allowed'],
    ]);
  });

  it('refuses -L, -D and -L to a Unix socket next to the granted -R: their connections open no channel', async () => {
    const r = tunnel.reverse;
    const localPort = await freePort();
    const socksPort = await freePort();
    const socketPort = await freePort();
    const ssh = customer.start(
      r.commands.ssh.replace(
        ' -R ',
        ` -L ${localPort}:127.0.0.1:${echo.port} -D 127.0.0.1:${socksPort} -L ${socketPort}:/run/postgresql/.s.PGSQL.5432 -R `,
      ),
    );
    try {
      await stack.waitForTunnel(tunnel.id, isUp, 15_000, ssh.stderr);
      const mark = stack.logs.length;

      // -L: ssh accepts locally, asks us for direct-tcpip, is refused and drops the connection.
      const local = await readUntilClosed(localPort, Buffer.from('hello through -L'));
      expect(local).toEqual(Buffer.alloc(0));

      // -D: a SOCKS5 CONNECT to the echo service gets no success reply.
      const socks = await readUntilClosed(
        socksPort,
        Buffer.from([5, 1, 0]),
        Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff]),
      );
      expect([...socks.subarray(0, 2)]).toEqual([5, 0]); // method negotiation only
      expect(socks[3]).not.toBe(0); // no "succeeded" reply follows (or none at all)

      // -L to a Unix socket on our side: direct-streamlocal, refused the same way.
      expect(await readUntilClosed(socketPort, Buffer.from('hello through -L to a socket'))).toEqual(
        Buffer.alloc(0),
      );

      const prohibited = () => ssh.stderr().match(/open failed: administratively prohibited: [^\n]*/g) ?? [];
      await waitFor(() => prohibited().length >= 3, 5_000, { what: 'ssh reported the three refusals' });
      expect(ssh.stderr()).not.toContain('connect failed');
      expect(prohibited().map((line) => line.split(': ')[2]?.split(';')[0])).toEqual([
        'local (-L), dynamic (-D) and jump (-J) forwarding are not allowed',
        'local (-L), dynamic (-D) and jump (-J) forwarding are not allowed',
        'Unix-socket forwarding is not allowed',
      ]);
      const refused = logsSince(mark, { msg: 'ssh request refused', tunnelId: tunnel.id });
      expect(refused.map((l) => [l.what, l.destination])).toEqual([
        ['direct-tcpip', `127.0.0.1:${echo.port}`],
        ['direct-tcpip', `127.0.0.1:${echo.port}`],
        ['direct-streamlocal', undefined],
      ]);
      expect(echo.acceptedConnections).toBe(0);
      // The granted forward is unaffected.
      expect(ssh.exit()).toBeUndefined();
      expect((await stack.getTunnel(tunnel.id)).status.state).toBe('up');
    } finally {
      ssh.kill();
      await ssh.exited;
    }
  });
});

/** Connects, writes `first` (then `second` after the first reply), returns all bytes read until close. */
function readUntilClosed(port: number, first: Buffer, second?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection to ${port} stayed open`));
    }, 10_000);
    socket.on('error', () => {});
    socket.once('connect', () => socket.write(first));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (second && chunks.length === 1) socket.write(second);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

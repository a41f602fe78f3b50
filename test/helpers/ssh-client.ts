/**
 * Logins with ssh2's Client, for what OpenSSH will not do on request: insisting on a password
 * the server never offered, hundreds of failed logins from one test, or one algorithm at a time
 * that OpenSSH is never offered.
 */
import { connect } from 'node:net';
import ssh2, { type AnyAuthMethod, type AuthenticationType } from 'ssh2';

const { Client } = ssh2;

export interface LoginResult {
  ok: boolean;
  /** ssh2's error message when the login did not succeed. */
  error?: string;
  ms: number;
}

/** The host key of a `known_hosts` line, for a host verifier that checks instead of trusting. */
export function hostKeyOf(knownHostsLine: string): Buffer {
  const base64 = knownHostsLine.split(' ')[2];
  if (!base64) throw new Error('malformed known_hosts line');
  return Buffer.from(base64, 'base64');
}

/**
 * Connects and tries `methods` in order (each one attempt); resolves once the server accepted one
 * or the connection ended. Never rejects: the outcome is in the result.
 */
export function tryLogin(options: {
  port: number;
  hostKey: Buffer;
  methods: AnyAuthMethod[];
  timeoutMs: number;
  localAddress?: string;
}): Promise<LoginResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const client = new Client();
    let settled = false;
    const settle = (ok: boolean, error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end();
      resolve({ ok, error, ms: performance.now() - started });
    };
    const timer = setTimeout(() => settle(false, 'test timeout'), options.timeoutMs);
    const queue = [...options.methods];
    client.on('ready', () => settle(true));
    client.on('error', (err) => settle(false, err.message));
    client.on('close', () => settle(false, 'connection closed'));
    client.connect({
      host: '127.0.0.1',
      port: options.port,
      localAddress: options.localAddress,
      username: options.methods[0]?.username ?? 'nobody',
      hostVerifier: (key: Buffer) => key.equals(options.hostKey),
      readyTimeout: options.timeoutMs,
      authHandler: (_methodsLeft, _partial, next) => {
        const method = queue.shift();
        // false (no method left) is what ssh2 expects to give up; its types do not list it.
        next((method ?? false) as AnyAuthMethod | AuthenticationType);
      },
    });
  });
}

export interface HeldForward {
  /** What the key exchange settled on. */
  negotiated: ssh2.NegotiatedAlgorithms;
  close(): void;
}

/**
 * A customer's `ssh -R` done with ssh2's Client (whose algorithms can be forced one by one): logs
 * in with `privateKey`, holds the forward of `bindPort`, and pipes each connection forwarded to it
 * on to `target`. Rejects on any failure or after `timeoutMs`; `close` ends the session.
 */
export function holdReverseForward(options: {
  port: number;
  hostKey: Buffer;
  username: string;
  privateKey: string;
  bindPort: number;
  target: { host: string; port: number };
  algorithms?: ssh2.Algorithms;
  localAddress?: string;
  timeoutMs: number;
}): Promise<HeldForward> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let negotiated: ssh2.NegotiatedAlgorithms | undefined;
    let settled = false;
    const fail = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end();
      reject(new Error(reason));
    };
    const timer = setTimeout(() => fail('test timeout'), options.timeoutMs);
    client.on('handshake', (n) => {
      negotiated = n;
    });
    client.on('error', (err) => fail(err.message));
    client.on('close', () => fail('connection closed'));
    client.on('tcp connection', (_info, accept) => {
      const channel = accept();
      const socket = connect(options.target.port, options.target.host);
      channel.on('error', () => socket.destroy());
      socket.on('error', () => channel.destroy());
      channel.pipe(socket).pipe(channel);
    });
    client.on('ready', () => {
      client.forwardIn('localhost', options.bindPort, (err) => {
        if (err) return fail(`forward refused: ${err.message}`);
        if (!negotiated) return fail('no handshake seen');
        settled = true;
        clearTimeout(timer);
        resolve({ negotiated, close: () => client.end() });
      });
    });
    try {
      client.connect({
        host: '127.0.0.1',
        port: options.port,
        localAddress: options.localAddress,
        username: options.username,
        privateKey: options.privateKey,
        hostVerifier: (key: Buffer) => key.equals(options.hostKey),
        algorithms: options.algorithms,
        readyTimeout: options.timeoutMs,
      });
    } catch (err) {
      // ssh2 throws at once for an algorithm it does not know.
      fail(err instanceof Error ? err.message : String(err));
    }
  });
}

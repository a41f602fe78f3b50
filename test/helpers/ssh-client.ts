/**
 * Logins with ssh2's Client, for what OpenSSH will not do on request: insisting on a password
 * the server never offered, or hundreds of failed logins from one test.
 */
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

/**
 * Hybrid key exchange methods inside ssh2. ssh2 1.17 has no post-quantum method and no plug-in
 * point (its maintainer declined one: mscdex/ssh2-streams#187), so patches/ssh2+1.17.0.patch adds
 * `registerKeyExchange` to lib/protocol/kex.js, and this subclass of its KeyExchange supplies the
 * three steps that differ from curve25519-sha256: Q_C, Q_S and K (hybrid-kex.ts). ssh2 keeps the
 * rest: the messages (SSH_MSG_KEX_ECDH_INIT/REPLY, RFC 5656 §4), the exchange hash, the host key
 * signature, strict kex and rekeying. A registered method serves Clients as well as Servers (tests
 * use a Client; the gateway's own outbound connections do not offer it).
 */
import ssh2Kex, { type KeyExchangeClass } from 'ssh2/lib/protocol/kex.js';
import { type ClientKeys, clientKeys, clientSecret, type HybridKexMethod, serverReply } from './hybrid-kex';

function register(): NonNullable<typeof ssh2Kex.registerKeyExchange> {
  const registerKeyExchange = ssh2Kex?.registerKeyExchange;
  if (typeof registerKeyExchange !== 'function') {
    throw new Error(
      'ssh2 is not patched for post-quantum key exchange (patches/ssh2+1.17.0.patch): run npm ci, whose postinstall applies it',
    );
  }
  return registerKeyExchange;
}

function hybridExchange(method: HybridKexMethod, Base: KeyExchangeClass): KeyExchangeClass {
  return class HybridExchange extends Base {
    /** Client: our key pairs and Q_C. Server: unused. */
    private keys: ClientKeys | undefined;
    /** Server: Q_S, made when the client's Q_C arrived. */
    private reply: Buffer | undefined;

    // biome-ignore lint/suspicious/noExplicitAny: forwarded to ssh2's constructor unchanged
    constructor(...args: any[]) {
      super(...args);
      this.type = method.label;
      this.hashName = method.hash;
    }

    override getPublicKey(): Buffer | undefined {
      if (this._protocol._server) return this.reply;
      this.keys ??= clientKeys(method);
      return this.keys.init;
    }

    /** Q_C and Q_S are strings: no mpint conversion. */
    override convertPublicKey(key: Buffer): Buffer {
      return key;
    }

    override computeSecret(otherPublicKey: Buffer): Buffer | Error {
      try {
        if (this._protocol._server) {
          const { reply, secret } = serverReply(method, otherPublicKey);
          this.reply = reply;
          return secret;
        }
        this.keys ??= clientKeys(method);
        return clientSecret(method, this.keys, otherPublicKey);
      } catch (err) {
        // ssh2 sends SSH_MSG_DISCONNECT (key exchange failed) and emits the error on the connection.
        return err instanceof Error ? err : new Error(String(err));
      }
    }
  };
}

/** Makes each of the method's names negotiable by ssh2 Clients and Servers created afterwards. */
export function registerHybridKex(method: HybridKexMethod): void {
  const registerKeyExchange = register();
  for (const name of method.names) registerKeyExchange(name, (Base) => hybridExchange(method, Base));
}

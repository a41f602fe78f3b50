/** ssh2 ships no types for its internals; only what the gateway uses (native-crypto.ts, disconnect.ts, server-sig-algs.ts, pq-kex/). */
declare module 'ssh2/lib/protocol/crypto.js' {
  const crypto: { bindingAvailable: boolean };
  export default crypto;
}

declare module 'ssh2/lib/protocol/utils.js' {
  const utils: { sendPacket?: (protocol: unknown, packet: Buffer, bypass?: boolean) => boolean };
  export default utils;
}

/**
 * ssh2's key exchange, with the extension point patches/ssh2+1.17.0.patch adds: what a method
 * registered through it sees of the KeyExchange base class (lib/protocol/kex.js).
 */
declare module 'ssh2/lib/protocol/kex.js' {
  export interface KeyExchangeInstance {
    /** Shown in ssh2's errors, e.g. "Error while computing DH secret (<type>): …". */
    type: string;
    /** Hash of the exchange hash H and of the key derivation (RFC 4253 §7.2). */
    hashName: string;
    readonly negotiated: { readonly kex: string };
    readonly _protocol: { readonly _server: boolean };
    /** Q_C on a client, Q_S on a server: hashed into H and sent as is. */
    getPublicKey(): Buffer | undefined;
    /** The peer's Q as it goes into H (an mpint for classic DH, unchanged for a string). */
    convertPublicKey(key: Buffer): Buffer;
    /** K as it goes, length-prefixed, into H and the key derivation; an Error fails the handshake. */
    computeSecret(otherPublicKey: Buffer): Buffer | Error;
  }
  // A mixin base must be typed with `any[]` arguments for `class extends` to accept it.
  // biome-ignore lint/suspicious/noExplicitAny: ssh2 passes (negotiated, protocol, remoteKexinit)
  export type KeyExchangeClass = new (...args: any[]) => KeyExchangeInstance;
  const kex: {
    registerKeyExchange?: (name: string, define: (base: KeyExchangeClass) => KeyExchangeClass) => void;
  };
  export default kex;
}

/** ssh2 ships no types for its internals; only what the gateway reads (see native-crypto.ts, disconnect.ts, server-sig-algs.ts). */
declare module 'ssh2/lib/protocol/crypto.js' {
  const crypto: { bindingAvailable: boolean };
  export default crypto;
}

declare module 'ssh2/lib/protocol/utils.js' {
  const utils: { sendPacket?: (protocol: unknown, packet: Buffer, bypass?: boolean) => boolean };
  export default utils;
}

/** ssh2 ships no types for its internals; only what the gateway reads (see native-crypto.ts). */
declare module 'ssh2/lib/protocol/crypto.js' {
  const crypto: { bindingAvailable: boolean };
  export default crypto;
}

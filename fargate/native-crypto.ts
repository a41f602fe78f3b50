/**
 * ssh2 runs AES-GCM and chacha20-poly1305 through OpenSSL in a native helper (`sshcrypto.node`)
 * that node-gyp builds at install time; when that build fails ssh2 says nothing and falls back to
 * JavaScript, and a tunnel moves a third fewer bytes per second or worse (412 instead of 633 MB/s
 * with AES-GCM on our reference machine, issue 7). The gateway checks at start-up and says so.
 *
 * A static import rather than `createRequire`: the gateway image holds only the esbuild bundle (no
 * node_modules), and esbuild bundles a static import, the same module instance ssh2 uses itself.
 */
import sshCrypto from 'ssh2/lib/protocol/crypto.js';

export function hasNativeSshCrypto(): boolean {
  return sshCrypto.bindingAvailable === true;
}

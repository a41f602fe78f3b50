/**
 * The post-quantum hybrid key exchanges the SSH endpoint offers ahead of the classical ones, so a
 * recorded session cannot be decrypted later by whoever breaks X25519 ("store now, decrypt later";
 * OpenSSH ≥ 10.1 warns on every connection to a server without one):
 *
 * - `mlkem768x25519-sha256`: ML-KEM-768 + X25519, OpenSSH ≥ 9.9's default (≥ 10.0 first);
 * - `sntrup761x25519-sha512` (RFC 9941) and `sntrup761x25519-sha512@openssh.com`, OpenSSH ≥ 9.0's
 *   default: the same method under its standard name and OpenSSH's original one.
 *
 * The client's preference picks among them (RFC 4253 §7.1). Importing this module loads the KEMs
 * and registers the methods with ssh2 before any Server is made (top-level await); a failure stops
 * the process at start rather than leaving the endpoint classical without a word.
 */
import { POST_QUANTUM_KEX_NAMES } from '../../shared/ssh-algorithms';
import type { HybridKexMethod } from './hybrid-kex';
import { loadKems, type PostQuantumKems } from './kems';
import { registerHybridKex } from './ssh2-hybrid-kex';

export function hybridKexMethods(kems: PostQuantumKems): HybridKexMethod[] {
  return [
    {
      names: POST_QUANTUM_KEX_NAMES.mlkem768x25519,
      label: 'mlkem768x25519',
      kem: kems.mlkem768,
      hash: 'sha256',
    },
    {
      names: POST_QUANTUM_KEX_NAMES.sntrup761x25519,
      label: 'sntrup761x25519',
      kem: kems.sntrup761,
      hash: 'sha512',
    },
  ];
}

async function installPostQuantumKex(): Promise<string[]> {
  const methods = hybridKexMethods(await loadKems());
  for (const method of methods) registerHybridKex(method);
  return methods.flatMap((method) => method.names);
}

/** Key exchange names to offer first, in OpenSSH 10's order; registered with ssh2 once imported. */
export const POST_QUANTUM_KEX: readonly string[] = await installPostQuantumKex();

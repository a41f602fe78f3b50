/**
 * The post-quantum KEMs, from the Open Quantum Safe project's liboqs compiled to WebAssembly
 * (`@oqs/liboqs-js`): sntrup761 (the implementation liboqs carries, as OpenSSH carries its own) and
 * ML-KEM-768 (FIPS 203). Node's OpenSSL 3.0 has neither (ML-KEM arrives with OpenSSL 3.5). Each
 * module is one self-contained file with the WebAssembly inside, so the gateway bundle carries it
 * (runtime-deps/patches/@oqs+liboqs-js+*.patch makes its import one a bundler can follow, and
 * exports the two algorithms' entry points; runtime-deps/ because it wants Node 22 to install). A KEM instance is used synchronously from the event loop only, as
 * liboqs-js requires (not thread-safe).
 */
// The two algorithms' own entry points (exported by the patch), not the index: that one imports
// all 100+ algorithm wrappers, seconds of start-up under a loader such as tsx.
import { createMLKEM768 } from '@oqs/liboqs-js/kem/ml-kem-768';
import { createSntrup761 } from '@oqs/liboqs-js/kem/sntrup761';
import type { Kem } from './hybrid-kex';

interface OqsKem {
  readonly info: { readonly keySize: { readonly publicKey: number; readonly ciphertext?: number } };
  generateKeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array };
  encapsulate(publicKey: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array };
  decapsulate(ciphertext: Uint8Array, secretKey: Uint8Array): Uint8Array;
}

/** Sizes from the specifications (NTRU Prime round 3; FIPS 203 table 3), checked against the library's. */
const SIZES = {
  sntrup761: { publicKeyBytes: 1158, ciphertextBytes: 1039 },
  'ML-KEM-768': { publicKeyBytes: 1184, ciphertextBytes: 1088 },
} as const;

function kemOf(name: keyof typeof SIZES, oqs: OqsKem): Kem {
  const sizes = SIZES[name];
  const { publicKey, ciphertext } = oqs.info.keySize;
  if (publicKey !== sizes.publicKeyBytes || ciphertext !== sizes.ciphertextBytes) {
    throw new Error(
      `liboqs ${name} has ${publicKey}-byte public keys and ${ciphertext}-byte ciphertexts, ` +
        `expected ${sizes.publicKeyBytes} and ${sizes.ciphertextBytes}`,
    );
  }
  return {
    name,
    ...sizes,
    generateKeyPair: () => oqs.generateKeyPair(),
    // liboqs-js takes plain Uint8Arrays only (it checks the constructor's name): Buffers are copied.
    encapsulate: (key) => oqs.encapsulate(new Uint8Array(key)),
    decapsulate: (ciphertext, secretKey) => oqs.decapsulate(new Uint8Array(ciphertext), secretKey),
  };
}

export interface PostQuantumKems {
  sntrup761: Kem;
  mlkem768: Kem;
}

/** Instantiates both WebAssembly modules (about 20 ms, once per process). */
export async function loadKems(): Promise<PostQuantumKems> {
  const [sntrup761, mlkem768] = await Promise.all([createSntrup761(), createMLKEM768()]);
  return { sntrup761: kemOf('sntrup761', sntrup761), mlkem768: kemOf('ML-KEM-768', mlkem768) };
}

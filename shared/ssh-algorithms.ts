/**
 * What the reverse-tunnel SSH endpoint offers in its key exchange, in one place: the endpoint
 * configures ssh2 from these lists, test/fargate/reverse-algorithms.test.ts negotiates every
 * entry end to end (a new entry gets a test or fails it), and docs/security/ssh-endpoint-algorithms.md
 * explains them. Only what ssh2's server completes is listed: ssh2 1.17 advertises
 * diffie-hellman-group-exchange-* by default but cannot serve it, and compresses with `zlib`
 * before authentication; neither is here.
 *
 * The client's cipher preference wins (RFC 4253 §7.1), and stock OpenSSH lists chacha20-poly1305
 * and AES-CTR before AES-GCM. AES-GCM costs the gateway the least CPU per byte (AES-NI through
 * OpenSSL), so clients known to have it are offered nothing else; every other client gets a
 * wider set, so that Dropbear (no AES-GCM) and older PuTTY connect at all.
 */

/**
 * Key exchange methods: OpenSSH 9's sshd list without group exchange (which ssh2's server does not
 * implement). Post-quantum hybrids go at the front.
 *
 * The client's order decides (RFC 4253 §7.1); ours matters for one thing only, whether a client
 * that sends its first key exchange packet on a guess guessed right: right when its first method
 * and ours match. ssh2 1.17 discards a guessed packet even then (kex.js compares the client's
 * first method with a list it has just overwritten), and the client waits forever for the answer.
 * So the first entry here must never be a guessing client's first choice: Dropbear guesses, and
 * lists first `sntrup761x25519-sha512` (builds with post-quantum key exchange),
 * `curve25519-sha256` (2018.76 on), `curve25519-sha256@libssh.org` (2013.62 on) or
 * `ecdh-sha2-nistp521` (before): test/shared/ssh-algorithms.test.ts holds that list. OpenSSH and
 * PuTTY never guess.
 */
export const KEX_ALGORITHMS: readonly string[] = [
  'diffie-hellman-group16-sha512',
  'curve25519-sha256',
  'curve25519-sha256@libssh.org',
  'ecdh-sha2-nistp256',
  'ecdh-sha2-nistp384',
  'ecdh-sha2-nistp521',
  'diffie-hellman-group18-sha512',
  'diffie-hellman-group14-sha256',
];

/**
 * The post-quantum hybrid key exchanges, by method, each under the names it is negotiated as
 * (preferred first): fargate/pq-kex/ implements them and registers these names with ssh2. Named
 * here, apart from the KEMs, so that what the endpoint offers can be said (`GET /v1/info`) without
 * loading them.
 */
export const POST_QUANTUM_KEX_NAMES = {
  mlkem768x25519: ['mlkem768x25519-sha256'],
  sntrup761x25519: ['sntrup761x25519-sha512', 'sntrup761x25519-sha512@openssh.com'],
} as const satisfies Record<string, readonly string[]>;

/** Every post-quantum name, in OpenSSH 10's order (ML-KEM first). */
export const POST_QUANTUM_KEX_ALGORITHMS: readonly string[] = [
  ...POST_QUANTUM_KEX_NAMES.mlkem768x25519,
  ...POST_QUANTUM_KEX_NAMES.sntrup761x25519,
];

/**
 * The key exchange offer: the post-quantum hybrids right after the first entry, which stays the one
 * no guessing client lists first (see KEX_ALGORITHMS).
 */
export function withPostQuantum(kex: readonly string[]): string[] {
  const [guessProof, ...rest] = kex;
  return [...(guessProof ? [guessProof] : []), ...POST_QUANTUM_KEX_ALGORITHMS, ...rest];
}

/** Host key signature algorithms: the gateway's host key is ed25519 (shared/host-key.ts). */
export const HOST_KEY_ALGORITHMS: readonly string[] = ['ssh-ed25519'];

/** Authenticated encryption on AES-NI: the cheapest cipher per byte for the gateway. */
const AES_GCM = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'] as const;

/**
 * MACs, for the CTR ciphers of the compatible set (AES-GCM and chacha20-poly1305 carry their own).
 * SHA-2 only, encrypt-then-MAC first; plain hmac-sha2-256 (encrypt-and-MAC) only because Dropbear
 * 2022.83 has nothing better (it has that and SHA-1).
 */
export const MAC_ALGORITHMS: readonly string[] = [
  'hmac-sha2-256-etm@openssh.com',
  'hmac-sha2-512-etm@openssh.com',
  'hmac-sha2-256',
];

/**
 * No compression: `zlib` before authentication exposes the decompressor to anyone, and the data
 * tunnels carry (database protocols, usually TLS inside) gains little from `zlib@openssh.com`
 * while every byte would cost the gateway deflate CPU. Every client offers `none`.
 */
export const COMPRESSION_ALGORITHMS: readonly string[] = ['none'];

/**
 * Signature algorithms a login may use (announced as `server-sig-algs`, RFC 8308): the key types
 * a tunnel accepts (shared/keys.ts), RSA with SHA-2 preferred; `ssh-rsa` (SHA-1) stays for old
 * clients that have nothing else (Dropbear before 2020.79, PuTTY before 0.75).
 */
export const USER_KEY_SIGNATURE_ALGORITHMS: readonly string[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Which cipher set a client gets. */
export type AlgorithmProfile = 'aes-gcm' | 'compatible';

export const CIPHERS_BY_PROFILE: Readonly<Record<AlgorithmProfile, readonly string[]>> = {
  'aes-gcm': AES_GCM,
  compatible: [...AES_GCM, 'chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'],
};

/** Everything offered to a client of one profile, in ssh2's terms. */
export interface AlgorithmOffer {
  kex: readonly string[];
  serverHostKey: readonly string[];
  cipher: readonly string[];
  hmac: readonly string[];
  compress: readonly string[];
}

export function algorithmOffer(profile: AlgorithmProfile): AlgorithmOffer {
  return {
    kex: KEX_ALGORITHMS,
    serverHostKey: HOST_KEY_ALGORITHMS,
    cipher: CIPHERS_BY_PROFILE[profile],
    hmac: MAC_ALGORITHMS,
    compress: COMPRESSION_ALGORITHMS,
  };
}

/**
 * Clients whose every build has AES-GCM, from the software version of their identification string
 * (RFC 4253 §4.2): OpenSSH since 6.2 (Windows' own build, on LibreSSL, always), PuTTY (and
 * Plink) releases since 0.76.
 */
const HAS_AES_GCM: readonly { pattern: RegExp; since: readonly [number, number] }[] = [
  { pattern: /^OpenSSH_(\d+)\.(\d+)/, since: [6, 2] },
  { pattern: /^OpenSSH_for_Windows_(\d+)\.(\d+)/, since: [7, 0] },
  { pattern: /^PuTTY_Release_(\d+)\.(\d+)/, since: [0, 76] },
];

/**
 * The profile for a client, from its identification line (`SSH-2.0-OpenSSH_9.2p1 Debian-2`).
 * Unknown, unreadable or older clients get the compatible set: a client without AES-GCM offered
 * only AES-GCM cannot connect at all, while one that has it merely picks a slower cipher.
 */
export function profileForClient(identification: string | undefined): AlgorithmProfile {
  const software = /^SSH-(?:2\.0|1\.99)-(\S+)/.exec(identification ?? '')?.[1];
  if (!software) return 'compatible';
  for (const { pattern, since } of HAS_AES_GCM) {
    const match = pattern.exec(software);
    if (!match) continue;
    const major = Number(match[1]);
    const minor = Number(match[2]);
    return major > since[0] || (major === since[0] && minor >= since[1]) ? 'aes-gcm' : 'compatible';
  }
  return 'compatible';
}

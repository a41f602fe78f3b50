/**
 * Pure SSH key handling: generating our own key pairs, validating customer-supplied public and
 * private keys, and rendering `authorized_keys` / `known_hosts` lines. Error messages are meant for
 * the customer and never contain key material or passphrases.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import ssh2 from 'ssh2';
import { ValidationError } from './errors.js';
import { hostProblem } from './hosts.js';
import { authorizedKeysOptionValue } from './quoting.js';
import { rsaPublicKeyProblem } from './rsa-public-check.js';

// ssh2 is CommonJS and Node's ESM loader cannot see `utils` as a named export.
const { utils } = ssh2;

/** Key types we generate. */
export type KeyType = 'ed25519' | 'rsa' | 'ecdsa';

/** A generated key pair: OpenSSH private key, `<type> <base64> <comment>` line, SHA256 fingerprint. */
export interface KeyPair {
  privateKey: string;
  publicKey: string;
  fingerprint: string;
}

/** A validated public key; `publicKey` is normalised to `<type> <base64>[ <comment>]`. */
export interface PublicKeyInfo {
  publicKey: string;
  type: string;
  fingerprint: string;
  bits?: number;
}

/** A validated private key with its derived `<type> <base64>` public line. */
export interface PrivateKeyInfo {
  privateKey: string;
  publicKey: string;
  type: string;
  fingerprint: string;
  bits?: number;
}

/**
 * Highest bcrypt KDF round count accepted in an encrypted OpenSSH private key. ssh2 runs bcrypt_pbkdf
 * synchronously in JavaScript (~12 ms per round here), so a key claiming millions of rounds would
 * block the event loop for hours; ssh-keygen's default is 16.
 */
export const MAX_BCRYPT_ROUNDS = 64;

// OpenSSL runs PBKDF2 natively, ~160 ms per million SHA-256 iterations: the same order of cost as
// MAX_BCRYPT_ROUNDS. OpenSSL's own default is 2048.
const MAX_PBKDF2_ITERATIONS = 1_000_000;

const MIN_RSA_BITS = 2048;
// OpenSSH refuses larger RSA keys (SSHBUF_MAX_BIGNUM); huge moduli only make verification slow.
const MAX_RSA_BITS = 16384;
const MAX_PUBLIC_INPUT = 16 * 1024;
const MAX_PRIVATE_INPUT = 64 * 1024;

const ECDSA_CURVES = new Map([
  ['ecdsa-sha2-nistp256', { curve: 'nistp256', jwkCurve: 'P-256', bits: 256, coordinateBytes: 32 }],
  ['ecdsa-sha2-nistp384', { curve: 'nistp384', jwkCurve: 'P-384', bits: 384, coordinateBytes: 48 }],
  ['ecdsa-sha2-nistp521', { curve: 'nistp521', jwkCurve: 'P-521', bits: 521, coordinateBytes: 66 }],
]);
const SUPPORTED_TYPES = new Set(['ssh-ed25519', 'ssh-rsa', ...ECDSA_CURVES.keys()]);
const SUPPORTED_TYPES_TEXT = 'ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa (at least 2048 bits)';

// Ciphers ssh-keygen can write that ssh2 1.17 decrypts; it fails on chacha20-poly1305@openssh.com.
const OPENSSH_KEY_CIPHERS = new Set([
  'aes128-ctr',
  'aes192-ctr',
  'aes256-ctr',
  'aes128-cbc',
  'aes192-cbc',
  'aes256-cbc',
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
]);

const OPENSSH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
const PRIVATE_KEY_MARKER = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PuTTY-User-Key-File/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
// Control characters other than whitespace; `\s` handles tabs and line breaks separately.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u0008\u000e-\u001f\u007f]/;
// A key type followed by key data somewhere after the start: what authorized_keys options look like.
const KEY_AFTER_OPTIONS = /\s(?:ssh|ecdsa-sha2|sk-ssh|sk-ecdsa-sha2)-[a-z0-9@.-]+\s+AAAA[A-Za-z0-9+/]/;
// SSH algorithm names are lower case (RFC 4251 section 6); anything else is not echoed back.
const ALGORITHM_NAME = /^[a-z][a-z0-9.-]*(?:@[a-z0-9.-]+)?$/;

const PUBLIC_KEY_HINT = 'e.g. the contents of ~/.ssh/id_ed25519.pub';
const DSA_MESSAGE = 'DSA keys are no longer supported by OpenSSH; use ed25519 (ssh-keygen -t ed25519)';
const FIDO_MESSAGE =
  'FIDO security-key (sk-*) keys are not supported; use an ed25519 key without a hardware token';
const CERTIFICATE_MESSAGE = 'OpenSSH certificates are not supported; paste the plain public key';

/** Generates a key pair with ssh2's asynchronous generator (RSA-4096 takes seconds of CPU). */
export async function generateKeyPair(type: KeyType, comment: string): Promise<KeyPair> {
  checkComment(comment);
  // ssh2 1.17's keygen drops leading zero bytes of an ed25519 public key (mscdex/ssh2#1390): about
  // one key in 256 comes out unparseable. Such a key would never log in; generate again.
  let pair = await generateRaw(type, comment);
  for (let attempt = 1; !parsesBack(pair); attempt++) {
    if (attempt >= KEYGEN_ATTEMPTS)
      throw new Error(`ssh2 generated no parseable ${type} key in ${attempt} attempts`);
    pair = await generateRaw(type, comment);
  }
  return toKeyPair(pair);
}

/**
 * The same on the calling thread, blocking it: for a worker thread, where the key's CPU then counts
 * against that thread (bounded, low priority) instead of libuv's shared pool.
 */
export function generateKeyPairSync(type: KeyType, comment: string): KeyPair {
  checkComment(comment);
  let pair = generateRawSync(type, comment);
  for (let attempt = 1; !parsesBack(pair); attempt++) {
    if (attempt >= KEYGEN_ATTEMPTS)
      throw new Error(`ssh2 generated no parseable ${type} key in ${attempt} attempts`);
    pair = generateRawSync(type, comment);
  }
  return toKeyPair(pair);
}

const KEYGEN_ATTEMPTS = 8;

function checkComment(comment: string): void {
  if (/[\r\n]/.test(comment) || CONTROL_CHARS.test(comment)) {
    throw new RangeError('key comment must not contain control characters');
  }
}

type RawPair = { private: string; public: string };

function generateRaw(type: KeyType, comment: string): Promise<RawPair> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, generated: RawPair) => (err ? reject(err) : resolve(generated));
    switch (type) {
      case 'ed25519':
        utils.generateKeyPair('ed25519', { comment }, done);
        break;
      case 'rsa':
        utils.generateKeyPair('rsa', { bits: 4096, comment }, done);
        break;
      case 'ecdsa':
        utils.generateKeyPair('ecdsa', { bits: 256, comment }, done);
        break;
    }
  });
}

function generateRawSync(type: KeyType, comment: string): RawPair {
  switch (type) {
    case 'ed25519':
      return utils.generateKeyPairSync('ed25519', { comment });
    case 'rsa':
      return utils.generateKeyPairSync('rsa', { bits: 4096, comment });
    case 'ecdsa':
      return utils.generateKeyPairSync('ecdsa', { bits: 256, comment });
  }
}

function toKeyPair(pair: RawPair): KeyPair {
  const [, base64 = ''] = pair.public.split(' ');
  return {
    privateKey: `${pair.private.trim()}\n`,
    publicKey: pair.public.trim(),
    fingerprint: fingerprintOf(Buffer.from(base64, 'base64')),
  };
}

function parsesBack(pair: RawPair): boolean {
  return !(utils.parseKey(pair.public) instanceof Error) && !(utils.parseKey(pair.private) instanceof Error);
}

/** `SHA256:<base64>` of a public key blob, exactly as `ssh-keygen -l` prints it. */
export function fingerprintOf(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** Validates a customer's OpenSSH public key line; throws `ValidationError` on `field`. */
export function parsePublicKey(input: string, field: string): PublicKeyInfo {
  const fail: (message: string) => never = (message) => {
    throw ValidationError.field(field, message);
  };
  const text = input.trim();
  if (text === '') fail(`is empty; paste an OpenSSH public key line, ${PUBLIC_KEY_HINT}`);
  if (text.length > MAX_PUBLIC_INPUT) fail(`is too long (${text.length} characters) for a public key`);
  if (PRIVATE_KEY_MARKER.test(text) || isBareOpenSshPrivateKey(text)) {
    fail(
      'is a private key, which must never be shared; we need the public key instead: ' +
        `the contents of the .pub file, ${PUBLIC_KEY_HINT}`,
    );
  }
  if (text.includes('---- BEGIN SSH2 PUBLIC KEY ----')) {
    fail('is an RFC 4716 (SSH2) public key; convert it to an OpenSSH line with `ssh-keygen -i -f <file>`');
  }
  if (/-----BEGIN (?:RSA )?PUBLIC KEY-----/.test(text)) {
    fail('is a PEM public key; convert it to an OpenSSH line with `ssh-keygen -i -m PKCS8 -f <file>`');
  }
  const lines = text.split(/\r\n|\r|\n/).filter((line) => line.trim() !== '');
  if (lines.length !== 1) fail(`expected exactly one public key line, got ${lines.length} lines`);
  if (CONTROL_CHARS.test(text)) fail('contains control characters');

  const [type = '', base64, ...comment] = text.split(/\s+/);
  if (!SUPPORTED_TYPES.has(type)) {
    const rejection = rejectedTypeMessage(type);
    if (rejection) fail(rejection);
    if (KEY_AFTER_OPTIONS.test(text)) {
      fail('starts with authorized_keys options; paste only the key itself: "<type> <base64> [comment]"');
    }
    if (ALGORITHM_NAME.test(type) && base64 !== undefined && BASE64.test(base64)) {
      fail(`key type ${quoteToken(type)} is not supported; use ${SUPPORTED_TYPES_TEXT}`);
    }
    fail(`is not an OpenSSH public key line; expected "<type> <base64> [comment]", ${PUBLIC_KEY_HINT}`);
  }
  if (base64 === undefined) return fail(`is missing the base64 key data after "${type}"`);
  const blob = decodeBase64(base64);
  if (!blob) return fail(`the key data after "${type}" is not valid base64`);
  const checked = checkPublicBlob(blob, type);
  if ('message' in checked) return fail(checked.message);

  // Cross-check with ssh2, which verifies signatures against this key later, and with OpenSSL,
  // which rejects what ssh2 does not check (e.g. an ECDSA point that is not on the curve).
  const canonical = `${type} ${checked.blob.toString('base64')}`;
  if (!isUsablePublicKey(canonical)) fail(`the key data is not a valid ${type} key`);
  return {
    publicKey: comment.length > 0 ? `${canonical} ${comment.join(' ')}` : canonical,
    type,
    fingerprint: fingerprintOf(checked.blob),
    bits: checked.bits,
  };
}

/**
 * Validates a customer's private key (OpenSSH or PEM, optionally encrypted) and derives its public
 * line. Throws `ValidationError` on `field`, or on the sibling `passphrase` field for passphrase
 * problems.
 */
export function parsePrivateKey(
  input: string,
  passphrase: string | undefined,
  field: string,
): PrivateKeyInfo {
  const fail: (message: string) => never = (message) => {
    throw ValidationError.field(field, message);
  };
  const passphraseField = siblingField(field, 'passphrase');
  const failPassphrase: (message: string) => never = (message) => {
    throw ValidationError.field(passphraseField, message);
  };
  const hasPassphrase = passphrase !== undefined && passphrase !== '';
  const text = input.replace(/\r\n?/g, '\n').trim();
  if (text === '') fail('is empty; paste the whole private key file, e.g. ~/.ssh/id_ed25519');
  if (text.length > MAX_PRIVATE_INPUT) fail(`is too long (${text.length} characters) for a private key`);
  if (text.startsWith('PuTTY-User-Key-File')) {
    fail('is a PuTTY key; export it in OpenSSH format (PuTTYgen: Conversions → Export OpenSSH key)');
  }
  if (text.includes('---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----')) {
    fail('is an SSH.COM private key; convert it with `ssh-keygen -i -f <file>`');
  }
  const publicPasted =
    'is a public key; we need the private key, the file without .pub (e.g. ~/.ssh/id_ed25519)';
  const blocks = text.match(/-----BEGIN [A-Z0-9 ]+-----/g) ?? [];
  if (blocks.length === 0) {
    const [first = ''] = text.split(/\s/);
    if (SUPPORTED_TYPES.has(first) || rejectedTypeMessage(first) || text.includes('BEGIN SSH2 PUBLIC KEY')) {
      fail(publicPasted);
    }
    fail('is not a private key; expected an OpenSSH or PEM key starting with "-----BEGIN"');
  }
  if (blocks.length > 1) fail(`contains ${blocks.length} keys; paste exactly one private key`);
  const pem = /^-----BEGIN ([A-Z0-9 ]+)-----\n([\s\S]+)\n-----END \1-----$/.exec(text);
  if (!pem) return fail('is not a complete key; include the -----BEGIN and -----END lines and nothing else');
  const [, label = '', body = ''] = pem;

  let checked: { type: string; bits: number; blob: Buffer };
  if (label === 'OPENSSH PRIVATE KEY') {
    const header = readOpenSshHeader(body);
    if ('message' in header) return fail(header.message);
    const result = checkPublicBlob(header.publicBlob);
    if ('message' in result) return fail(result.message);
    checked = result;
    const encrypted = header.cipher !== 'none';
    if (encrypted && !hasPassphrase) failPassphrase('is required: the private key is encrypted');
    // Only now, with the round count capped, may ssh2 run bcrypt.
    const parsed = utils.parseKey(text, encrypted ? passphrase : undefined);
    if (parsed instanceof Error) {
      if (encrypted) failPassphrase('is wrong: the private key could not be decrypted with it');
      return fail('is not a valid OpenSSH private key (corrupt or truncated)');
    }
    if (!parsed.isPrivateKey() || !parsed.getPublicSSH().equals(header.publicBlob)) {
      fail('is not a valid OpenSSH private key (corrupt or truncated)');
    }
  } else if (['RSA PRIVATE KEY', 'EC PRIVATE KEY', 'PRIVATE KEY', 'ENCRYPTED PRIVATE KEY'].includes(label)) {
    const encrypted = label === 'ENCRYPTED PRIVATE KEY' || /^Proc-Type:\s*4,ENCRYPTED/m.test(body);
    if (encrypted && !hasPassphrase) failPassphrase('is required: the private key is encrypted');
    if (label === 'ENCRYPTED PRIVATE KEY') {
      const costProblem = checkPkcs8Encryption(body);
      if (costProblem) fail(costProblem);
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(
        encrypted ? { key: text, format: 'pem', passphrase } : { key: text, format: 'pem' },
      );
    } catch {
      if (encrypted) failPassphrase('is wrong: the private key could not be decrypted with it');
      return fail('is not a valid PEM private key (corrupt or truncated)');
    }
    const blob = sshBlobOf(key);
    if (typeof blob === 'string') return fail(blob);
    const result = checkPublicBlob(blob);
    if ('message' in result) return fail(result.message);
    checked = result;
  } else if (label === 'DSA PRIVATE KEY') {
    return fail(DSA_MESSAGE);
  } else if (label.endsWith('PUBLIC KEY')) {
    return fail(publicPasted);
  } else {
    return fail(
      `is a ${quoteToken(label)} block, not a supported private key (OpenSSH or PEM RSA/EC/PKCS#8)`,
    );
  }
  return {
    privateKey: `${text}\n`,
    publicKey: `${checked.type} ${checked.blob.toString('base64')}`,
    type: checked.type,
    fingerprint: fingerprintOf(checked.blob),
    bits: checked.bits,
  };
}

/**
 * What a session opened with a tunnel key runs instead of a shell, a command or a subsystem. Both
 * bastions run it through the user's login shell, so it means the same in sh, bash, dash, busybox
 * ash, csh and fish: no quotes, no redirection, no backslash (Dropbear copies command="..." as it
 * stands, OpenSSH unescapes it).
 */
export const TUNNEL_KEY_FORCED_COMMAND = 'echo this key only opens a forward to its tunnel service; exit 1';

/**
 * `no-agent-forwarding,no-X11-forwarding,no-pty,command="...",permitopen="host:port" <publicKey>`:
 * options that OpenSSH (7.2 and later) and Dropbear both read, which leave the key nothing but the
 * forward to the service. Not `restrict,port-forwarding`: Dropbear does not know `port-forwarding`
 * and refuses the line (and its `restrict` would refuse every forward). What each bastion enforces,
 * and the one thing neither can refuse per key (`-R`): docs/security/authorized-keys-line.md.
 */
export function authorizedKeysLine(publicKey: string, service: { host: string; port: number }): string {
  assertHostPort(service.host, service.port);
  if (/[\r\n]/.test(publicKey)) throw new RangeError('public key must be a single line');
  const host = isIP(service.host) === 6 ? `[${service.host}]` : service.host;
  const permitOpen = authorizedKeysOptionValue(`${host}:${service.port}`);
  const command = authorizedKeysOptionValue(TUNNEL_KEY_FORCED_COMMAND);
  return `no-agent-forwarding,no-X11-forwarding,no-pty,command=${command},permitopen=${permitOpen} ${publicKey.trim()}`;
}

/** A `known_hosts` line: `host <type> <base64>`, or `[host]:port ...` when the port is not 22. */
export function knownHostsLine(host: string, port: number, publicKey: string): string {
  assertHostPort(host, port);
  const [type, base64] = publicKey.trim().split(/\s+/);
  if (!type || !base64) throw new RangeError('public key must be "<type> <base64>"');
  return `${port === 22 ? host : `[${host}]:${port}`} ${type} ${base64}`;
}

type CheckedBlob = { type: string; bits: number; blob: Buffer } | { message: string };

/**
 * Parses an SSH public key blob completely and applies our policy (types, RSA size and arithmetic).
 * When `declaredType` is given the blob must carry that type. Returns the blob as OpenSSH would
 * write it.
 */
function checkPublicBlob(blob: Buffer, declaredType?: string): CheckedBlob {
  const reader = new WireReader(blob);
  const embedded = reader.string()?.toString('latin1');
  const expected = declaredType ?? embedded ?? '';
  const invalid = { message: `the key data is not a valid ${quoteToken(expected)} key` };
  if (embedded === undefined) return invalid;
  if (declaredType !== undefined && embedded !== declaredType) {
    const what = ALGORITHM_NAME.test(embedded) ? `is a ${quoteToken(embedded)} key` : 'is not a public key';
    return { message: `the key data ${what}, which does not match the declared type "${declaredType}"` };
  }
  const rejection = rejectedTypeMessage(embedded);
  if (rejection) return { message: rejection };
  if (!SUPPORTED_TYPES.has(embedded)) {
    return { message: `key type ${quoteToken(embedded)} is not supported; use ${SUPPORTED_TYPES_TEXT}` };
  }
  let bits: number;
  if (embedded === 'ssh-ed25519') {
    if (reader.string()?.length !== 32) return invalid;
    bits = 256;
  } else if (embedded === 'ssh-rsa') {
    const e = reader.string();
    const n = reader.string();
    if (!e || !n || !isPositiveMpint(e) || !isPositiveMpint(n)) return invalid;
    bits = bitLength(n);
    if (bits < MIN_RSA_BITS) {
      return {
        message: `RSA key is ${bits} bits; at least ${MIN_RSA_BITS} are required (better: use ed25519)`,
      };
    }
    if (bits > MAX_RSA_BITS)
      return { message: `RSA key is ${bits} bits; at most ${MAX_RSA_BITS} are supported` };
    if (!reader.atEnd()) return invalid;
    const problem = rsaPublicKeyProblem(e, n);
    if (problem) return { message: problem };
    // OpenSSH reads integers with superfluous leading zeros and writes them without: so do we, or
    // the fingerprint and the key a client offers at login would not match what we store.
    return { type: embedded, bits, blob: wire(embedded, mpint(e), mpint(n)) };
  } else {
    const curve = ECDSA_CURVES.get(embedded);
    const name = reader.string()?.toString('latin1');
    const point = reader.string();
    if (!curve || name !== curve.curve || !point) return invalid;
    // Uncompressed point only, as OpenSSH writes it.
    if (point.length !== 1 + 2 * curve.coordinateBytes || point[0] !== 0x04) return invalid;
    bits = curve.bits;
  }
  if (!reader.atEnd()) return invalid;
  return { type: embedded, bits, blob };
}

function rejectedTypeMessage(type: string): string | undefined {
  if (type === 'ssh-dss') return DSA_MESSAGE;
  if (/^sk-(?:ssh|ecdsa)-/.test(type)) return FIDO_MESSAGE;
  if (/-cert-v0\d@openssh\.com$/.test(type)) return CERTIFICATE_MESSAGE;
  return undefined;
}

function isUsablePublicKey(line: string): boolean {
  const parsed = utils.parseKey(line);
  if (parsed instanceof Error) return false;
  try {
    createPublicKey(parsed.getPublicPEM());
    return true;
  } catch {
    return false;
  }
}

type OpenSshHeader = { cipher: string; publicBlob: Buffer } | { message: string };

/**
 * Reads the unencrypted header of an `openssh-key-v1` container (PROTOCOL.key in OpenSSH):
 * cipher, kdf, kdf options (salt, rounds), key count and public keys, so that the bcrypt cost and
 * the key type are checked before ssh2 spends any CPU on decryption.
 */
function readOpenSshHeader(body: string): OpenSshHeader {
  const malformed = { message: 'is not a valid OpenSSH private key (corrupt or truncated)' };
  const compact = body.replace(/\s+/g, '');
  if (!BASE64.test(compact)) return malformed;
  const data = Buffer.from(compact, 'base64');
  if (!data.subarray(0, OPENSSH_MAGIC.length).equals(OPENSSH_MAGIC)) return malformed;
  const reader = new WireReader(data, OPENSSH_MAGIC.length);
  const cipher = reader.string()?.toString('latin1');
  const kdf = reader.string()?.toString('latin1');
  const kdfOptions = reader.string();
  const keyCount = reader.uint32();
  if (cipher === undefined || kdf === undefined || kdfOptions === undefined || keyCount === undefined) {
    return malformed;
  }
  if (keyCount > 1) return { message: `contains ${keyCount} keys; paste exactly one private key` };
  const publicBlob = reader.string();
  if (keyCount === 0 || !publicBlob) return malformed;

  if (kdf === 'none') {
    if (cipher !== 'none' || kdfOptions.length > 0) return malformed;
  } else if (kdf === 'bcrypt') {
    const options = new WireReader(kdfOptions);
    const salt = options.string();
    const rounds = options.uint32();
    if (!salt || rounds === undefined || rounds === 0 || cipher === 'none') return malformed;
    if (rounds > MAX_BCRYPT_ROUNDS) {
      return {
        message:
          `is encrypted with ${rounds} bcrypt KDF rounds; at most ${MAX_BCRYPT_ROUNDS} are accepted ` +
          "(ssh-keygen's default is 16): re-encrypt it with `ssh-keygen -p -a 16 -f <file>`",
      };
    }
  } else {
    return {
      message: `uses the unsupported key derivation ${quoteToken(kdf)}; re-encrypt it with ssh-keygen -p`,
    };
  }
  if (cipher !== 'none' && !OPENSSH_KEY_CIPHERS.has(cipher)) {
    return {
      message: `is encrypted with ${quoteToken(cipher)}, which we cannot decrypt; re-encrypt it with \`ssh-keygen -p -Z aes256-ctr -f <file>\``,
    };
  }
  return { cipher, publicBlob };
}

/**
 * Checks the key derivation of an encrypted PKCS#8 key (RFC 8018 PBES2 with PBKDF2) before OpenSSL
 * runs it synchronously: a hostile iteration count would block the event loop.
 */
function checkPkcs8Encryption(body: string): string | undefined {
  const unsupported =
    'uses an unsupported PKCS#8 encryption; re-encrypt it in OpenSSH format with `ssh-keygen -p -f <file>`';
  const compact = body.replace(/\s+/g, '');
  if (!BASE64.test(compact)) return 'is not a valid PEM private key (corrupt or truncated)';
  const der = Buffer.from(compact, 'base64');
  const info = readDer(der, 0, 0x30);
  const algorithm = info && readDer(info.body, 0, 0x30);
  const scheme = algorithm && readDer(algorithm.body, 0, 0x06);
  if (!algorithm || !scheme || scheme.body.toString('hex') !== OID_PBES2) return unsupported;
  const params = readDer(algorithm.body, scheme.end, 0x30);
  const kdf = params && readDer(params.body, 0, 0x30);
  const kdfId = kdf && readDer(kdf.body, 0, 0x06);
  if (!kdf || !kdfId || kdfId.body.toString('hex') !== OID_PBKDF2) return unsupported;
  const kdfParams = readDer(kdf.body, kdfId.end, 0x30);
  const salt = kdfParams && readDer(kdfParams.body, 0, 0x04);
  const iterations = kdfParams && salt && readDer(kdfParams.body, salt.end, 0x02);
  if (!iterations || iterations.body.length === 0) return unsupported;
  const count =
    iterations.body.length > 6
      ? Number.POSITIVE_INFINITY
      : iterations.body.readUIntBE(0, iterations.body.length);
  if (count > MAX_PBKDF2_ITERATIONS) {
    const shown = Number.isFinite(count) ? String(count) : 'more than 2^48';
    return `is encrypted with ${shown} PBKDF2 iterations; at most ${MAX_PBKDF2_ITERATIONS} are accepted: re-encrypt it with \`ssh-keygen -p -f <file>\``;
  }
  return undefined;
}

const OID_PBES2 = '2a864886f70d01050d'; // 1.2.840.113549.1.5.13
const OID_PBKDF2 = '2a864886f70d01050c'; // 1.2.840.113549.1.5.12

function readDer(buf: Buffer, offset: number, tag: number): { body: Buffer; end: number } | undefined {
  if (offset + 2 > buf.length || buf.readUInt8(offset) !== tag) return undefined;
  let length = buf.readUInt8(offset + 1);
  let start = offset + 2;
  if (length & 0x80) {
    const size = length & 0x7f;
    if (size === 0 || size > 4 || start + size > buf.length) return undefined;
    length = buf.readUIntBE(start, size);
    start += size;
  }
  if (start + length > buf.length) return undefined;
  return { body: buf.subarray(start, start + length), end: start + length };
}

/** The SSH wire-format public blob (RFC 4253 section 6.6, RFC 5656, RFC 8709) of a key object. */
function sshBlobOf(key: KeyObject): Buffer | string {
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const { n, e } = key.export({ format: 'jwk' });
      if (!n || !e) return 'is not a valid RSA private key';
      return wire('ssh-rsa', mpint(Buffer.from(e, 'base64url')), mpint(Buffer.from(n, 'base64url')));
    }
    case 'ec': {
      const { crv, x, y } = key.export({ format: 'jwk' });
      const entry = [...ECDSA_CURVES].find(([, curve]) => curve.jwkCurve === crv);
      if (!entry || !x || !y)
        return `EC curve ${quoteToken(crv ?? 'unknown')} is not supported; use ${SUPPORTED_TYPES_TEXT}`;
      const [type, curve] = entry;
      const point = Buffer.concat([
        Buffer.from([0x04]),
        Buffer.from(x, 'base64url'),
        Buffer.from(y, 'base64url'),
      ]);
      return wire(type, Buffer.from(curve.curve), point);
    }
    case 'ed25519': {
      const { x } = key.export({ format: 'jwk' });
      if (!x) return 'is not a valid ed25519 private key';
      return wire('ssh-ed25519', Buffer.from(x, 'base64url'));
    }
    case 'dsa':
      return DSA_MESSAGE;
    default:
      return `key type ${quoteToken(key.asymmetricKeyType ?? 'unknown')} is not supported; use ${SUPPORTED_TYPES_TEXT}`;
  }
}

/** SSH wire format: each field as a length-prefixed string, the type name first. */
export function wire(type: string, ...fields: Buffer[]): Buffer {
  const parts = [Buffer.from(type, 'latin1'), ...fields].flatMap((field) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(field.length);
    return [length, field];
  });
  return Buffer.concat(parts);
}

/** Unsigned big-endian bytes as an SSH mpint: no leading zeros, a zero byte if the top bit is set. */
export function mpint(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  const top = trimmed[0];
  return top !== undefined && top & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
}

function isPositiveMpint(value: Buffer): boolean {
  const top = value[0];
  return top !== undefined && (top & 0x80) === 0 && value.some((byte) => byte !== 0);
}

function bitLength(value: Buffer): number {
  let start = 0;
  while (start < value.length && value[start] === 0) start++;
  const top = value[start];
  if (top === undefined) return 0;
  return (value.length - start - 1) * 8 + (32 - Math.clz32(top));
}

/** Strict base64: must re-encode to the same text (modulo padding), or `undefined`. */
function decodeBase64(text: string): Buffer | undefined {
  if (!BASE64.test(text)) return undefined;
  const decoded = Buffer.from(text, 'base64');
  return decoded.toString('base64').replace(/=+$/, '') === text.replace(/=+$/, '') ? decoded : undefined;
}

/** True for the base64 body of an OpenSSH private key pasted without its BEGIN/END lines. */
function isBareOpenSshPrivateKey(text: string): boolean {
  const compact = text.replace(/\s+/g, '');
  return (
    BASE64.test(compact) && Buffer.from(compact.slice(0, 24), 'base64').subarray(0, 15).equals(OPENSSH_MAGIC)
  );
}

/** A type token safe to echo: at most 40 printable ASCII characters, quoted. */
function quoteToken(token: string): string {
  const printable = token.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 40 ? `"${printable.slice(0, 40)}…"` : `"${printable}"`;
}

/** `auth.privateKey` → `auth.passphrase`. */
function siblingField(field: string, name: string): string {
  const dot = field.lastIndexOf('.');
  return dot === -1 ? name : `${field.slice(0, dot)}.${name}`;
}

function assertHostPort(host: string, port: number): void {
  // Both lines are parsed by sshd/ssh: a quote, space, comma, % or wildcard would change their
  // meaning. The request schemas refuse the same hosts, so a stored tunnel always renders.
  const problem = hostProblem(host);
  if (problem) throw new RangeError(`host ${problem}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError('port must be 1-65535');
}

/** Reads SSH wire-format fields (RFC 4251 section 5); `undefined` past the end instead of throwing. */
class WireReader {
  constructor(
    private readonly buf: Buffer,
    private pos = 0,
  ) {}

  uint32(): number | undefined {
    if (this.pos + 4 > this.buf.length) return undefined;
    const value = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return value;
  }

  string(): Buffer | undefined {
    const length = this.uint32();
    if (length === undefined || this.pos + length > this.buf.length) return undefined;
    const value = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  atEnd(): boolean {
    return this.pos === this.buf.length;
  }
}

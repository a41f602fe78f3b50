/**
 * A private key without its encryption: the bcrypt or PBKDF2 work happens once, here (on a crypto
 * pool worker), and the result is an unencrypted `openssh-key-v1` key that ssh2 parses in
 * microseconds on the event loop. Works for every format `parsePrivateKey` accepts, PKCS#8
 * included, which ssh2 cannot read by itself. Errors never carry key material or passphrases.
 */
import { createPrivateKey, type KeyObject, randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import { mpint, wire } from './keys';

const { utils } = ssh2;

const OPENSSH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
// Unencrypted keys are padded to the block size of cipher "none" (PROTOCOL.key in OpenSSH).
const BLOCK_SIZE = 8;
const CURVES: Record<string, string> = { 'P-256': 'nistp256', 'P-384': 'nistp384', 'P-521': 'nistp521' };

/** Raised when a key cannot be decrypted or re-encoded; says nothing about the key itself. */
export class KeyDecryptError extends Error {
  override name = 'KeyDecryptError';
}

/**
 * Decrypts `text` (OpenSSH or PEM; `passphrase` unused when it is not encrypted) and returns it as
 * an unencrypted OpenSSH private key. Runs the key derivation synchronously: call it on a worker.
 */
export function decryptPrivateKey(text: string, passphrase: string | undefined): string {
  return encodeOpenSshPrivateKey(readKeyObject(text.replace(/\r\n?/g, '\n').trim(), passphrase));
}

function readKeyObject(text: string, passphrase: string | undefined): KeyObject {
  if (text.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----')) {
    const parsed = utils.parseKey(text, passphrase);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error || !key.isPrivateKey()) {
      throw new KeyDecryptError('the OpenSSH private key could not be decrypted');
    }
    return createPrivateKey(key.getPrivatePEM());
  }
  try {
    return createPrivateKey(
      passphrase ? { key: text, format: 'pem', passphrase } : { key: text, format: 'pem' },
    );
  } catch {
    // OpenSSL's message can quote the input; ours does not.
    throw new KeyDecryptError('the PEM private key could not be decrypted');
  }
}

/** `key` as an unencrypted `openssh-key-v1` private key (what `ssh-keygen -p -N ''` writes). */
export function encodeOpenSshPrivateKey(key: KeyObject): string {
  const { publicBlob, privateFields } = keyFields(key);
  const check = randomBytes(4);
  const body = Buffer.concat([check, check, privateFields, sshString(Buffer.alloc(0))]);
  const padding = Buffer.from(
    Array.from({ length: (BLOCK_SIZE - (body.length % BLOCK_SIZE)) % BLOCK_SIZE }, (_, i) => i + 1),
  );
  const container = Buffer.concat([
    OPENSSH_MAGIC,
    sshString(Buffer.from('none')), // cipher
    sshString(Buffer.from('none')), // kdf
    sshString(Buffer.alloc(0)), // kdf options
    uint32(1), // number of keys
    sshString(publicBlob),
    sshString(Buffer.concat([body, padding])),
  ]);
  const lines = container.toString('base64').match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** The public blob and the private key fields in OpenSSH's order (sshkey_private_serialize). */
function keyFields(key: KeyObject): { publicBlob: Buffer; privateFields: Buffer } {
  const jwk = key.export({ format: 'jwk' });
  const b = (value: string | undefined): Buffer => {
    if (value === undefined) throw new KeyDecryptError(`the ${key.asymmetricKeyType} key lacks a component`);
    return Buffer.from(value, 'base64url');
  };
  switch (key.asymmetricKeyType) {
    case 'ed25519': {
      const pub = b(jwk.x);
      return {
        publicBlob: wire('ssh-ed25519', pub),
        privateFields: wire('ssh-ed25519', pub, Buffer.concat([b(jwk.d), pub])),
      };
    }
    case 'rsa': {
      const [n, e] = [mpint(b(jwk.n)), mpint(b(jwk.e))];
      return {
        publicBlob: wire('ssh-rsa', e, n),
        privateFields: wire(
          'ssh-rsa',
          n,
          e,
          mpint(b(jwk.d)),
          mpint(b(jwk.qi)),
          mpint(b(jwk.p)),
          mpint(b(jwk.q)),
        ),
      };
    }
    case 'ec': {
      const curve = CURVES[jwk.crv ?? ''];
      if (!curve) throw new KeyDecryptError('the EC key is on a curve SSH does not use');
      const type = `ecdsa-sha2-${curve}`;
      const point = Buffer.concat([Buffer.from([0x04]), b(jwk.x), b(jwk.y)]);
      return {
        publicBlob: wire(type, Buffer.from(curve), point),
        privateFields: wire(type, Buffer.from(curve), point, mpint(b(jwk.d))),
      };
    }
    default:
      throw new KeyDecryptError(`${key.asymmetricKeyType ?? 'unknown'} keys are not supported`);
  }
}

function sshString(value: Buffer): Buffer {
  return Buffer.concat([uint32(value.length), value]);
}

function uint32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}

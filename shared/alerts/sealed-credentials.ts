/**
 * Alert channel credentials sealed for the table: AES-256-GCM under one key for every channel,
 * the key kept in the secret store (`secretNames.alertChannelKey`) like every other customer
 * secret. Envelope-style rather than a Secrets Manager secret per channel ($0.40 a month each): a
 * copy of the table alone (a backup, an export, a role that reads items) gives no credential away.
 *
 * Format `v1.<nonce>.<ciphertext and tag>`, both base64url: `v1` names the algorithm and the key,
 * so a rotation can seal as `v2` under a new key and still open `v1`. A random 96-bit nonce per
 * seal; the additional authenticated data is the workspace and channel id, so a value copied into
 * another channel's item does not open. Pure: the key comes in as an argument.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { SealedCredentialsError, SecretStoreError } from '../errors';
import { secretNames } from '../secrets/secret-names';
import { type ChannelCredentials, ChannelCredentialsSchema } from './channel-schemas';

const VERSION = 'v1';
const KEY_BYTES = 32;
// Random 96-bit nonces stay safe far beyond the seals one key will see (NIST SP 800-38D: 2^32).
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Domain separation: this key seals nothing else, but the AAD says what a value is for anyway. */
const PURPOSE = 'tunnelkeeper/alert-channel-credentials/v1';

/** Which channel a sealed value belongs to: bound into it as additional authenticated data. */
export interface SealedFor {
  workspaceId: string;
  channelId: string;
}

/** A new key, as the secret store keeps it: 32 random bytes, base64url (43 characters). */
export const newChannelKey = (): string => randomBytes(KEY_BYTES).toString('base64url');

/** The key from its stored text; a value that is not 32 bytes of base64url is refused (never quoted). */
export function parseChannelKey(text: string): Buffer {
  const trimmed = text.trim();
  const key = BASE64URL.test(trimmed) ? Buffer.from(trimmed, 'base64url') : Buffer.alloc(0);
  if (key.length !== KEY_BYTES || key.toString('base64url') !== trimmed) {
    throw new SecretStoreError(
      secretNames.alertChannelKey,
      `secret ${secretNames.alertChannelKey} is not a key: expected ${KEY_BYTES} bytes of base64url`,
    );
  }
  return key;
}

export function sealCredentials(key: Buffer, sealedFor: SealedFor, credentials: ChannelCredentials): string {
  checkKey(key);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(additionalData(sealedFor));
  const sealed = Buffer.concat([
    cipher.update(JSON.stringify(credentials), 'utf8'),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
  return `${VERSION}.${nonce.toString('base64url')}.${sealed.toString('base64url')}`;
}

/** Throws `SealedCredentialsError` naming the channel and why; never the value, sealed or open. */
export function openCredentials(key: Buffer, sealedFor: SealedFor, value: string): ChannelCredentials {
  checkKey(key);
  const fail = (reason: string, cause?: unknown) =>
    new SealedCredentialsError(sealedFor.channelId, reason, cause === undefined ? undefined : { cause });
  const [version, nonceText, sealedText, ...rest] = value.split('.');
  if (version !== VERSION) {
    throw fail(/^v\d{1,3}$/.test(version ?? '') ? `unknown format ${version}` : 'not a sealed value');
  }
  if (rest.length > 0 || !isBase64url(nonceText) || !isBase64url(sealedText)) {
    throw fail('malformed sealed value');
  }
  const nonce = Buffer.from(nonceText, 'base64url');
  const sealed = Buffer.from(sealedText, 'base64url');
  if (nonce.length !== NONCE_BYTES || sealed.length < TAG_BYTES) throw fail('malformed sealed value');
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(additionalData(sealedFor));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  let plaintext: string;
  try {
    plaintext = Buffer.concat([
      decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
  } catch (err) {
    // GCM says only that the tag does not match: which of these it was cannot be told apart.
    throw fail("authentication failed (another key, an altered value, or another channel's)", err);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(plaintext);
  } catch {
    parsed = undefined;
  }
  const credentials = ChannelCredentialsSchema.safeParse(parsed);
  if (!credentials.success) throw fail('its content is not channel credentials');
  return credentials.data;
}

function additionalData({ workspaceId, channelId }: SealedFor): Buffer {
  // JSON keeps the parts apart whatever they contain: ("a:b", "c") never reads as ("a", "b:c").
  return Buffer.from(JSON.stringify([PURPOSE, workspaceId, channelId]), 'utf8');
}

/** Canonical base64url only: one sealed value has one spelling. */
function isBase64url(text: string | undefined): text is string {
  return (
    text !== undefined &&
    BASE64URL.test(text) &&
    Buffer.from(text, 'base64url').toString('base64url') === text
  );
}

function checkKey(key: Buffer): void {
  if (key.length !== KEY_BYTES) {
    throw new Error(`an alert channel key is ${KEY_BYTES} bytes, not ${key.length}`);
  }
}

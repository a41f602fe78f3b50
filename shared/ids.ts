/** Random identifiers and credentials. Ids are lowercase so they work as SSH user and unit names. */
import { createHash, randomBytes } from 'node:crypto';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

function base32(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += BASE32[b & 31];
  return out;
}

/** `tun_` + 16 base32 characters (80 bits): a tunnel id, also its SSH user name. */
export const newTunnelId = (): string => `tun_${base32(randomBytes(16))}`;
export const newWorkspaceId = (): string => `ws_${base32(randomBytes(16))}`;
/** `key_` + 16 base32 characters: names an API key (to list and revoke it) without being it. */
export const newApiKeyId = (): string => `key_${base32(randomBytes(16))}`;

/** An API key: `tk_` + 43 base64url characters (256 bits). Only its hash is ever stored. */
export const newApiKey = (): string => `tk_${randomBytes(32).toString('base64url')}`;
export const newAdminToken = (): string => `tka_${randomBytes(32).toString('base64url')}`;

/** Hex SHA-256, the stored form of API keys and the admin token. */
export const sha256Hex = (value: string): string => createHash('sha256').update(value).digest('hex');

export const TUNNEL_ID_PATTERN = /^tun_[a-z2-7]{16}$/;
export const API_KEY_ID_PATTERN = /^key_[a-z2-7]{16}$/;
export const WORKSPACE_ID_PATTERN = /^(ws_[a-z2-7]{16}|default)$/;

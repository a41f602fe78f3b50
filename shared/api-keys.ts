/**
 * API keys as a workspace's resource: what is stored of a new key (never the key), and how much
 * of it may be shown. Pure; the store keeps the records, the API routes hand keys out.
 */
import { newApiKey, newApiKeyId, sha256Hex } from './ids';

/** How many characters of a key may be shown: `tk_` and 7 of its 43 random ones (42 of 256 bits). */
const PREFIX_LENGTH = 10;

/** What the store keeps of an API key: its hash (to authenticate), never the key. */
export interface ApiKeyRecord {
  id: string;
  hash: string;
  prefix: string;
  createdAt: string;
}

/** A key and its record, for the one response that shows the key. */
export function issueApiKey(
  createdAt: string,
  apiKey = newApiKey(),
): { apiKey: string; record: ApiKeyRecord } {
  return {
    apiKey,
    record: { id: newApiKeyId(), hash: sha256Hex(apiKey), prefix: apiKey.slice(0, PREFIX_LENGTH), createdAt },
  };
}

/**
 * How stale `lastUsedAt` may get: a key in use is written at most this often (a write per request
 * would double the API's table traffic), so it says when, to within this.
 */
export const LAST_USED_RESOLUTION_MS = 5 * 60_000;

/**
 * The gateway's SSH host key: generated once, kept in the `SecretStore`, published to customers as
 * a `known_hosts` line. Every gateway worker and the API read the same key.
 */
import { z } from 'zod';
import { SecretNotFoundError } from './errors';
import { generateKeyPair } from './keys';
import type { SecretStore } from './secrets/secret-store';

export const HOST_KEY_SECRET = 'gateway/host-key';

const HostKeySchema = z.object({ privateKey: z.string(), publicKey: z.string() });
export type HostKey = z.infer<typeof HostKeySchema>;

/** Reads the host key, creating it on first use. */
export async function ensureHostKey(secrets: SecretStore): Promise<HostKey> {
  try {
    return HostKeySchema.parse(JSON.parse(await secrets.get(HOST_KEY_SECRET)));
  } catch (err) {
    if (!(err instanceof SecretNotFoundError)) throw err;
  }
  const pair = await generateKeyPair('ed25519', 'tunnelkeeper-gateway');
  const key: HostKey = { privateKey: pair.privateKey, publicKey: pair.publicKey };
  await secrets.put(HOST_KEY_SECRET, JSON.stringify(key));
  return key;
}

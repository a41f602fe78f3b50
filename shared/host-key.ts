/**
 * The gateway's SSH host key: generated once, kept in the `SecretStore`, published to customers as
 * a `known_hosts` line. Every gateway worker and the API read the same key.
 */

import { z } from 'zod';
import { generateKeyPair } from './keys';
import { ensureSecret } from './secrets/ensure-secret';
import { secretNames } from './secrets/secret-names';
import type { SecretStore } from './secrets/secret-store';

const HostKeySchema = z.object({ privateKey: z.string(), publicKey: z.string() });
export type HostKey = z.infer<typeof HostKeySchema>;

/** Reads the host key, creating it on first use. */
export async function ensureHostKey(secrets: SecretStore): Promise<HostKey> {
  const stored = await ensureSecret(secrets, secretNames.hostKey, async () => {
    const pair = await generateKeyPair('ed25519', 'tunnelkeeper-gateway');
    return JSON.stringify({ privateKey: pair.privateKey, publicKey: pair.publicKey });
  });
  return HostKeySchema.parse(JSON.parse(stored));
}

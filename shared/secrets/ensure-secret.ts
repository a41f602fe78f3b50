import { SecretNotFoundError } from '../errors';
import type { SecretStore } from './secret-store';

/**
 * Reads a secret that is made once and shared (host key, control token), creating it on first
 * use. Create-only, then read again: of several processes starting at once, one value wins and
 * every process ends up with it.
 */
export async function ensureSecret(
  secrets: SecretStore,
  name: string,
  make: () => Promise<string>,
): Promise<string> {
  try {
    return await secrets.get(name);
  } catch (err) {
    if (!(err instanceof SecretNotFoundError)) throw err;
  }
  const value = await make();
  return (await secrets.create(name, value)) ? value : secrets.get(name);
}

/**
 * Standard tunnels' credentials as the gateway reads them: through its secret cache, versioned by the
 * key fingerprint in the tunnel's record (`publicKeyFingerprint`, the newest key, which the secret
 * holds first). A rotation writes the secret with its new key first, then the record: once the
 * gateway sees the new fingerprint the cache misses, and a read that finds another newest key than
 * the record names (a write between the two) is used but not kept. The one write that keeps the
 * fingerprint, retiring the old key after a rotation, is this gateway's own and goes through the
 * cache. Only the gateway reads this way: the API's rotation reads the store itself, as it must
 * never build a new secret on a stale one.
 */
import { SecretStoreError } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import type { SecretCache, SecretRead } from '../../shared/secrets/secret-cache';
import { secretNames } from '../../shared/secrets/secret-names';
import { type TunnelRecord, type TunnelSecret, TunnelSecretSchema } from '../../shared/tunnel';

/**
 * How long a tunnel's credentials are served from memory at most. A backstop only: a rotation the
 * gateway sees misses the cache at once, and a key the bastion refuses is read again. Five minutes
 * turns a tunnel retrying every 30 s into one Secrets Manager call per 5 minutes.
 */
export const TUNNEL_SECRET_TTL_MS = 5 * 60_000;
/**
 * Tunnels whose credentials a gateway holds. Above the standard tunnels a gateway serves (each also
 * holds a bastion session, which weighs far more than its 1-8 KB of keys), so reconnects never evict
 * each other; a `/test` of tunnels served elsewhere takes the least recently used.
 */
export const TUNNEL_SECRET_MAX_ENTRIES = 10_000;

export interface TunnelSecretRead {
  secret: TunnelSecret;
  read: SecretRead;
}

export class TunnelSecrets {
  constructor(private readonly cache: SecretCache) {}

  /** The tunnel's credentials as of its record. Secret store errors as they come (none is kept). */
  async read(tunnel: TunnelRecord): Promise<TunnelSecretRead> {
    const name = secretNames.tunnel(tunnel.id);
    const version = tunnel.publicKeyFingerprint;
    const read = await this.cache.read(name, version);
    const secret = this.parse(name, version, read.value);
    return { secret, read };
  }

  /**
   * The bastion refused `failed`: the credentials as stored now, when they may be newer than `failed`
   * (it came from memory) and are; else undefined. A failed read is only logged: the refusal stands.
   */
  async recheck(
    tunnel: TunnelRecord,
    failed: TunnelSecretRead,
    logger: Logger,
  ): Promise<TunnelSecretRead | undefined> {
    const name = secretNames.tunnel(tunnel.id);
    const version = tunnel.publicKeyFingerprint;
    try {
      const value = await this.cache.recheck(name, version, failed.read);
      if (value === undefined) return undefined;
      return { secret: this.parse(name, version, value), read: { value, mayBeStale: false } };
    } catch (err) {
      logger.warn('standard tunnel credentials not read again after a refusal', { tunnelId: tunnel.id, err });
      return undefined;
    }
  }

  /** Replaces the tunnel's credentials (in the store, then in memory). */
  async replace(tunnelId: string, secret: TunnelSecret): Promise<void> {
    const [newest] = secret.keys;
    const name = secretNames.tunnel(tunnelId);
    if (!newest) throw new Error(`tunnel ${tunnelId}: a secret without a key`);
    await this.cache.put(name, newest.fingerprint, JSON.stringify(secret));
  }

  /** The tunnel is no longer served here: its keys leave memory. */
  forget(tunnelId: string): void {
    this.cache.forget(secretNames.tunnel(tunnelId));
  }

  private parse(name: string, version: string, value: string): TunnelSecret {
    const parsed = TunnelSecretSchema.safeParse(parseJson(value));
    if (!parsed.success) {
      // Not kept: a fixed one is read at the next attempt. No cause: JSON.parse quotes the text it
      // read, and zod's issues the values; only the fields that failed are named.
      this.cache.forget(name, version);
      const fields = parsed.error.issues.map((issue) => issue.path.map(String).join('.') || '(the value)');
      throw new SecretStoreError(name, `secret ${name} is not a tunnel's credentials: ${fields.join(', ')}`);
    }
    if (parsed.data.keys[0]?.fingerprint !== version) this.cache.forget(name, version);
    return parsed.data;
  }
}

/** The JSON value, or undefined when `text` is not JSON (then the schema names the whole value). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

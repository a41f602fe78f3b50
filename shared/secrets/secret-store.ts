/**
 * Where private keys, passwords and the gateway host key live. Values are opaque strings (the
 * callers store JSON); names are slash-separated, e.g. `tunnels/tun_abc`. Adapters translate their
 * backend's failures into the named errors of `shared/errors.ts`.
 */
export interface SecretStore {
  /** Creates or replaces the secret. */
  put(name: string, value: string): Promise<void>;
  /** Creates the secret only if it does not exist; false when it already did (nothing written). */
  create(name: string, value: string): Promise<boolean>;
  /** Throws `SecretNotFoundError` when there is no such secret. */
  get(name: string): Promise<string>;
  /** Deleting a missing secret is not an error. */
  delete(name: string): Promise<void>;
}

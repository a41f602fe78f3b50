/**
 * The secret store of `npm start`: encrypted files under `DATA_DIR/secrets`. The stack and its
 * sweeper thread each open it here, so both find the same secrets (the alert channel key).
 */
import { join } from 'node:path';
import type { Env } from '../shared/config';
import { FileSecretStore } from '../shared/secrets/file-secret-store';

export function localSecretStore(env: Pick<Env, 'DATA_DIR'>): FileSecretStore {
  return new FileSecretStore(join(env.DATA_DIR, 'secrets'));
}

/**
 * The operator token of `npm start`: `ADMIN_TOKEN`, or the one kept in `DATA_DIR/admin-token`. The
 * stack generates it on first start; `npm run gateway` only reads what that stack keeps.
 */
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Env } from '../shared/config';
import { newAdminToken } from '../shared/ids';

type TokenEnv = Pick<Env, 'ADMIN_TOKEN' | 'DATA_DIR'>;

const fileOf = (env: TokenEnv) => join(env.DATA_DIR, 'admin-token');

/** The token if one is set or kept; undefined when neither is. */
export async function storedAdminToken(env: TokenEnv): Promise<string | undefined> {
  if (env.ADMIN_TOKEN) return env.ADMIN_TOKEN;
  try {
    return (await readFile(fileOf(env), 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The token, generated and kept on first start (`isNew`: to be shown once). */
export async function adminToken(env: TokenEnv): Promise<{ token: string; isNew: boolean }> {
  const stored = await storedAdminToken(env);
  if (stored !== undefined) return { token: stored, isNew: false };
  const token = newAdminToken();
  await writeFile(fileOf(env), `${token}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(fileOf(env), 0o600);
  return { token, isNew: true };
}

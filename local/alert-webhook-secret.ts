/** The webhook signing secret of `npm start`: `ALERT_WEBHOOK_SECRET`, or one kept in `DATA_DIR`. */
import { randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Env } from '../shared/config';

export const ALERT_WEBHOOK_SECRET_FILE = 'alert-webhook-secret';

/**
 * Generated on first start (256 bits, 0600) and reused after, so receivers configured once keep
 * verifying across restarts; `isNew` tells the caller to show it once.
 */
export async function alertWebhookSecret(
  env: Pick<Env, 'ALERT_WEBHOOK_SECRET' | 'DATA_DIR'>,
): Promise<{ secret: string; isNew: boolean }> {
  if (env.ALERT_WEBHOOK_SECRET) return { secret: env.ALERT_WEBHOOK_SECRET, isNew: false };
  const file = join(env.DATA_DIR, ALERT_WEBHOOK_SECRET_FILE);
  try {
    const kept = (await readFile(file, 'utf8')).trim();
    if (kept.length > 0) return { secret: kept, isNew: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secret = `whsec_${randomBytes(32).toString('base64url')}`;
  // The file's bytes are the key exactly: a receiver that signs with them verifies (no newline).
  await writeFile(file, secret, { mode: 0o600 });
  await chmod(file, 0o600);
  return { secret, isNew: true };
}

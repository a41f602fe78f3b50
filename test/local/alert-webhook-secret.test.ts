import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ALERT_WEBHOOK_SECRET_FILE, alertWebhookSecret } from '../../local/alert-webhook-secret';

describe('alertWebhookSecret', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tk-whsec-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('generates a secret on first start, keeps it 0600 in DATA_DIR and reuses it after', async () => {
    const first = await alertWebhookSecret({ DATA_DIR: dir });
    expect(first.isNew).toBe(true);
    expect(first.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    const file = join(dir, ALERT_WEBHOOK_SECRET_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    // Byte for byte: a receiver reading the file as its key verifies.
    expect(await readFile(file, 'utf8')).toBe(first.secret);
    expect(await alertWebhookSecret({ DATA_DIR: dir })).toEqual({ secret: first.secret, isNew: false });
  });

  it('prefers ALERT_WEBHOOK_SECRET and writes nothing then', async () => {
    const given = 'whsec_from-the-environment-01';
    expect(await alertWebhookSecret({ DATA_DIR: dir, ALERT_WEBHOOK_SECRET: given })).toEqual({
      secret: given,
      isNew: false,
    });
    await expect(stat(join(dir, ALERT_WEBHOOK_SECRET_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('replaces an empty file instead of signing with an empty key', async () => {
    await writeFile(join(dir, ALERT_WEBHOOK_SECRET_FILE), '\n');
    const { secret, isNew } = await alertWebhookSecret({ DATA_DIR: dir });
    expect(isNew).toBe(true);
    expect(secret.length).toBeGreaterThan(40);
  });
});

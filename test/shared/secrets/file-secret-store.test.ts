import { copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SecretNotFoundError, SecretStoreError } from '../../../shared/errors';
import { FileSecretStore } from '../../../shared/secrets/file-secret-store';

const VALUE = '{"privateKey":"-----BEGIN OPENSSH PRIVATE KEY----- s3cr3t-material"}';

let root: string;
let dir: string;
let store: FileSecretStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'file-secret-store-'));
  dir = join(root, 'secrets');
  store = new FileSecretStore(dir);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The secret files in `dir`, i.e. everything but the master key. */
async function secretFiles(): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f !== 'master.key');
}

/** Puts `name` and returns the path of the file that appeared for it. */
async function putAndFindFile(name: string, value: string): Promise<string> {
  const before = new Set(await readdir(dir).catch(() => []));
  await store.put(name, value);
  const added = (await secretFiles()).filter((f) => !before.has(f));
  expect(added).toHaveLength(1);
  return join(dir, added[0] ?? '');
}

async function expectStoreError(promise: Promise<unknown>, name: string): Promise<SecretStoreError> {
  const err = await promise.then(
    () => expect.unreachable('expected a SecretStoreError'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SecretStoreError);
  expect(err).not.toBeInstanceOf(SecretNotFoundError);
  if (!(err instanceof SecretStoreError)) throw err;
  expect(err.secretName).toBe(name);
  expect(err.message).not.toContain(VALUE);
  return err;
}

describe('FileSecretStore', () => {
  it('round-trips a value', async () => {
    await store.put('tunnels/tun_abc', VALUE);
    await expect(store.get('tunnels/tun_abc')).resolves.toBe(VALUE);
  });

  it('round-trips any string, including empty and non-ASCII', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 200 }), async (value) => {
        await store.put('gateway/host-key', value);
        expect(await store.get('gateway/host-key')).toBe(value);
      }),
      { numRuns: 50 },
    );
  });

  it('overwrites an existing secret', async () => {
    await store.put('tunnels/tun_abc', 'first');
    await store.put('tunnels/tun_abc', 'second');
    await expect(store.get('tunnels/tun_abc')).resolves.toBe('second');
    expect(await secretFiles()).toHaveLength(1);
  });

  it('throws SecretNotFoundError for a missing secret, before and after the directory exists', async () => {
    await expect(store.get('tunnels/nope')).rejects.toBeInstanceOf(SecretNotFoundError);
    await store.put('tunnels/other', VALUE);
    const err = await store.get('tunnels/nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretNotFoundError);
    expect(err).toMatchObject({ secretName: 'tunnels/nope' });
  });

  it('deletes a secret, and deleting a missing one is fine', async () => {
    await store.put('tunnels/tun_abc', VALUE);
    await store.delete('tunnels/tun_abc');
    await expect(store.get('tunnels/tun_abc')).rejects.toBeInstanceOf(SecretNotFoundError);
    await expect(store.delete('tunnels/tun_abc')).resolves.toBeUndefined();
    await expect(new FileSecretStore(join(root, 'never-created')).delete('x')).resolves.toBeUndefined();
    expect(await secretFiles()).toEqual([]);
  });

  it('creates the directory 0700 and the master key and secret files 0600', async () => {
    const file = await putAndFindFile('tunnels/tun_abc', VALUE);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'master.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'master.key'))).toHaveLength(32);
  });

  it('never writes the plaintext to disk', async () => {
    await store.put('tunnels/tun_abc', VALUE);
    await store.put('tunnels/tun_abc', VALUE);
    for (const file of await readdir(dir)) {
      const data = await readFile(join(dir, file));
      expect(data.includes(VALUE)).toBe(false);
      expect(data.includes('s3cr3t')).toBe(false);
      expect(file).not.toContain('tun_abc');
    }
  });

  it('uses a fresh IV per write', async () => {
    const file = await putAndFindFile('tunnels/tun_abc', VALUE);
    const first = await readFile(file);
    await store.put('tunnels/tun_abc', VALUE);
    const second = await readFile(file);
    expect(second.equals(first)).toBe(false);
  });

  it.each([
    ['a flipped ciphertext byte', (b: Buffer) => flip(b, b.length - 1)],
    ['a flipped auth tag byte', (b: Buffer) => flip(b, 20)],
    ['a flipped IV byte', (b: Buffer) => flip(b, 3)],
    ['an unknown format version', (b: Buffer) => flip(b, 0)],
    ['a truncated file', (b: Buffer) => b.subarray(0, 10)],
    ['an empty file', () => Buffer.alloc(0)],
  ])('rejects a file with %s as SecretStoreError naming the secret', async (_, tamper) => {
    const file = await putAndFindFile('tunnels/tun_abc', VALUE);
    await writeFile(file, tamper(await readFile(file)));
    const err = await expectStoreError(store.get('tunnels/tun_abc'), 'tunnels/tun_abc');
    expect(err.message).toContain('tunnels/tun_abc');
    expect(err.cause).toBeDefined();
  });

  it("refuses a file copied onto another name's file (the name is authenticated)", async () => {
    const fileA = await putAndFindFile('tunnels/tun_a', VALUE);
    const fileB = await putAndFindFile('tunnels/tun_b', 'b-value');
    await copyFile(fileA, fileB);
    await expectStoreError(store.get('tunnels/tun_b'), 'tunnels/tun_b');
    await expect(store.get('tunnels/tun_a')).resolves.toBe(VALUE);
  });

  it('refuses secrets encrypted under another master key', async () => {
    const file = await putAndFindFile('tunnels/tun_abc', VALUE);
    const otherDir = join(root, 'other');
    const other = new FileSecretStore(otherDir);
    await other.put('seed', 'x');
    await copyFile(file, join(otherDir, file.slice(dir.length + 1)));
    await expectStoreError(other.get('tunnels/tun_abc'), 'tunnels/tun_abc');
  });

  it('reports a master key of the wrong size as SecretStoreError', async () => {
    await store.put('tunnels/tun_abc', VALUE);
    await writeFile(join(dir, 'master.key'), Buffer.alloc(16));
    const fresh = new FileSecretStore(dir);
    const err = await expectStoreError(fresh.get('tunnels/tun_abc'), 'tunnels/tun_abc');
    expect(err.message).toMatch(/master key/);
  });

  it.each([
    '',
    '/etc/passwd',
    '../escape',
    'tunnels/../../escape',
    'tunnels/..',
    './x',
    'a//b',
    'trailing/',
    'nul\0byte',
    'new\nline',
  ])('rejects the unsafe name %j without touching the disk outside the store', async (name) => {
    await store.put('tunnels/ok', VALUE);
    const rootBefore = await readdir(root);
    const dirBefore = await readdir(dir);
    await expectStoreError(store.put(name, VALUE), name);
    await expectStoreError(store.get(name), name);
    await expectStoreError(store.delete(name), name);
    expect(await readdir(root)).toEqual(rootBefore);
    expect(await readdir(dir)).toEqual(dirBefore);
  });

  it.each([
    'tunnels/tun_abc',
    'gateway/host-key',
    'a',
    'with space/and.dots/..hidden...',
    'ünïcödé/名前',
    'x'.repeat(1000),
  ])('accepts the name %j', async (name) => {
    await store.put(name, VALUE);
    await expect(store.get(name)).resolves.toBe(VALUE);
    await store.delete(name);
    await expect(store.get(name)).rejects.toBeInstanceOf(SecretNotFoundError);
  });

  it('ignores a temp file left behind by a crash mid-write', async () => {
    const file = await putAndFindFile('tunnels/tun_abc', VALUE);
    const base = file.slice(dir.length + 1);
    // What a writer killed between open and rename leaves: a partial temp file next to the real one.
    await writeFile(join(dir, `.${base}.00000000-0000-0000-0000-000000000000.tmp`), Buffer.from([1, 2, 3]));
    await expect(store.get('tunnels/tun_abc')).resolves.toBe(VALUE);
    await expect(new FileSecretStore(dir).get('tunnels/tun_abc')).resolves.toBe(VALUE);
    await store.put('tunnels/tun_abc', 'after crash');
    await expect(new FileSecretStore(dir).get('tunnels/tun_abc')).resolves.toBe('after crash');
  });

  it('leaves no temp files after successful writes', async () => {
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.put(`tunnels/tun_${i}`, VALUE)));
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('lets a second instance on the same directory read what the first wrote', async () => {
    await store.put('tunnels/tun_abc', VALUE);
    const second = new FileSecretStore(dir);
    await expect(second.get('tunnels/tun_abc')).resolves.toBe(VALUE);
    await second.put('gateway/host-key', 'host');
    await expect(store.get('gateway/host-key')).resolves.toBe('host');
  });

  it('agrees on one master key when several instances start on an empty directory at once', async () => {
    // A race is timing-dependent, so run several rounds, each on a fresh directory.
    for (let round = 0; round < 10; round++) {
      const roundDir = join(root, `race-${round}`);
      const stores = Array.from({ length: 16 }, () => new FileSecretStore(roundDir));
      await Promise.all(stores.map((s, i) => s.put(`tunnels/tun_${i}`, `value-${i}`)));
      const reader = new FileSecretStore(roundDir);
      const values = await Promise.all(stores.map((_, i) => reader.get(`tunnels/tun_${i}`)));
      expect(values).toEqual(stores.map((_, i) => `value-${i}`));
      expect((await readdir(roundDir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    }
  });

  it('handles concurrent puts of different names', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `tunnels/tun_${i}`);
    await Promise.all(names.map((name) => store.put(name, `value of ${name}`)));
    const values = await Promise.all(names.map((name) => store.get(name)));
    expect(values).toEqual(names.map((name) => `value of ${name}`));
    expect(await secretFiles()).toHaveLength(50);
  });

  it('leaves one intact value after concurrent puts of the same name', async () => {
    const written = Array.from({ length: 20 }, (_, i) => `value-${i}`);
    await Promise.all(written.map((v) => store.put('tunnels/tun_abc', v)));
    expect(written).toContain(await store.get('tunnels/tun_abc'));
    expect(await secretFiles()).toHaveLength(1);
  });
});

function flip(data: Buffer, index: number): Buffer {
  const copy = Buffer.from(data);
  copy[index] = (copy[index] ?? 0) ^ 0xff;
  return copy;
}

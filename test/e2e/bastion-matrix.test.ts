/**
 * The bastion half of issue 13's interop matrix (acceptance 1): each bastion customers run (OpenSSH
 * sshd, Dropbear 2022.83) × each key type (ed25519, RSA, ECDSA P-256/384/521) carries a standard
 * tunnel to a real PostgreSQL, with `authorizedKeysLine` installed verbatim. Keys the API generates
 * for ed25519 and P-256, the customer's own (ssh-keygen) for RSA-3072 (ssh-keygen's default size;
 * the API's RSA-4096 takes seconds of key generation per cell, and bastion-connection.test.ts runs
 * it through OpenSSH) and P-384/521, which the API does not generate. One stack, one PostgreSQL and
 * one bastion of each kind, every cell at once.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bastion } from '../helpers/bastion';
import { Cleanups } from '../helpers/cleanups';
import { requireTools } from '../helpers/customer';
import { type CustomerBastion, DropbearBastion } from '../helpers/dropbear-bastion';
import { startTestStack, type TestStack } from '../helpers/gateway-stack';
import { type Postgres, requirePostgres, startPostgres } from '../helpers/postgres';
import { createStandard, isUp, psql } from '../helpers/standard';

interface KeyCell {
  name: string;
  /** The public key's type as it appears in the line. */
  type: string;
  /** `auth` of the create body: generated, or the customer's own private key (ssh-keygen args). */
  auth: { method: 'generated'; keyType: 'ed25519' | 'rsa' | 'ecdsa' } | { keygen: string[] };
}

const KEYS: KeyCell[] = [
  { name: 'ed25519', type: 'ssh-ed25519', auth: { method: 'generated', keyType: 'ed25519' } },
  // ssh2 signs with rsa-sha2-256 when the server lists it (both do): its getKeyAlgos prefers it.
  { name: 'RSA-3072', type: 'ssh-rsa', auth: { keygen: ['-t', 'rsa', '-b', '3072'] } },
  { name: 'ECDSA P-256', type: 'ecdsa-sha2-nistp256', auth: { method: 'generated', keyType: 'ecdsa' } },
  { name: 'ECDSA P-384', type: 'ecdsa-sha2-nistp384', auth: { keygen: ['-t', 'ecdsa', '-b', '384'] } },
  { name: 'ECDSA P-521', type: 'ecdsa-sha2-nistp521', auth: { keygen: ['-t', 'ecdsa', '-b', '521'] } },
];
const BASTIONS = ['openssh', 'dropbear'] as const;
const CELLS = BASTIONS.flatMap((bastion) => KEYS.map((key) => ({ bastion, key })));

/** The server's line for a successful login with the key `fingerprint`. */
const ACCEPTED: Record<(typeof BASTIONS)[number], (user: string, fingerprint: string) => RegExp> = {
  openssh: (user, fp) =>
    new RegExp(`Accepted publickey for ${user} from 127\\.0\\.0\\.1 port \\d+ ssh2: \\S+ ${esc(fp)}`),
  dropbear: (user, fp) => new RegExp(`Pubkey auth succeeded for '${user}' with \\S+ key ${esc(fp)} from`),
};
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('standard tunnels through OpenSSH and Dropbear bastions with every key type', () => {
  const cleanups = new Cleanups();
  let stack: TestStack;
  let postgres: Postgres;
  let keyDir: string;
  const bastions = new Map<string, CustomerBastion>();
  /** What each bastion's authorized_keys holds. */
  const installed = new Map<string, string[]>();
  /**
   * Cells create their tunnels and install their lines one at a time (ten RSA/ECDSA creates at once
   * only queue on the key pool and the table), then wait and query all at once.
   */
  let queue: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(step: () => Promise<T>): Promise<T> => {
    const run = queue.then(step);
    queue = run.catch(() => {});
    return run;
  };

  beforeAll(async () => {
    requireTools('ssh-keygen', 'psql', 'pkill', 'useradd', 'userdel');
    requirePostgres();
    keyDir = await mkdtemp(join(tmpdir(), 'tk-matrix-'));
    cleanups.add(() => rm(keyDir, { recursive: true, force: true }));
    const [started, pg, openssh, dropbear] = await Promise.all([
      cleanups.started(
        startTestStack({
          portRange: '14400-14599',
          heartbeatIntervalMs: 1_000,
          env: {
            RECONNECT_INITIAL_MS: '200',
            RECONNECT_MAX_MS: '1000',
            POOL_POLL_INTERVAL_MS: '500',
            BASTION_READY_TIMEOUT_MS: '10000',
          },
        }),
        (s) => s.stop(),
      ),
      cleanups.started(startPostgres(), (p) => p.stop()),
      cleanups.started(Bastion.start(), (b) => b.dispose()),
      cleanups.started(DropbearBastion.start(), (b) => b.dispose()),
      makeCustomerKeys(),
    ]);
    stack = started;
    postgres = pg;
    bastions.set('openssh', openssh).set('dropbear', dropbear);
  });

  afterAll(() => cleanups.runAll());

  /** The customers' own private keys, by cell, made while the stack starts. */
  const customerKeys = new Map<string, string>();
  const cellName = (kind: string, key: KeyCell) => `${kind}-${key.name.replace(/\W/g, '-')}`;
  const authOf = (kind: string, key: KeyCell): Record<string, unknown> =>
    'method' in key.auth
      ? key.auth
      : { method: 'private_key', privateKey: customerKeys.get(cellName(kind, key)) };
  async function makeCustomerKeys(): Promise<void> {
    await Promise.all(
      CELLS.map(async ({ bastion, key }) => {
        const { auth } = key;
        if ('method' in auth) return;
        const file = join(keyDir, cellName(bastion, key));
        await new Promise<void>((resolve, reject) =>
          execFile('ssh-keygen', ['-q', ...auth.keygen, '-N', '', '-C', '', '-f', file], (err) =>
            err ? reject(err) : resolve(),
          ),
        );
        customerKeys.set(cellName(bastion, key), await readFile(file, 'utf8'));
      }),
    );
  }

  it.concurrent.each(CELLS)(
    '$bastion × $key.name reaches PostgreSQL',
    { timeout: 90_000 },
    async ({ bastion: kind, key }) => {
      const bastion = bastions.get(kind);
      if (!bastion) throw new Error(`no ${kind} bastion`);
      const created = await oneAtATime(async () => {
        const tunnel = await createStandard(stack.api, {
          ssh: { host: '127.0.0.1', port: bastion.port, user: bastion.user },
          service: { host: '127.0.0.1', port: postgres.port },
          auth: authOf(kind, key),
        });
        const lines = [...(installed.get(kind) ?? []), tunnel.authorizedKeysLine];
        installed.set(kind, lines);
        await bastion.setAuthorizedKeys(lines);
        return tunnel;
      });
      const started = Date.now();
      expect(created.publicKey.startsWith(`${key.type} `)).toBe(true);
      const up = await stack.waitForTunnel(created.id, isUp, 30_000, () => bastion.output());
      if (!up.connect) throw new Error('up without connect');
      const result = await psql(up.connect.host, up.connect.port, `SELECT 'through ${kind}'`);
      expect(result, result.stderr).toMatchObject({ code: 0, stdout: `through ${kind}\n` });
      expect(up.status.keyFingerprint).toBe(created.publicKeyFingerprint);
      expect(bastion.output()).toMatch(ACCEPTED[kind](bastion.user, created.publicKeyFingerprint));
      console.info(
        `figure: ${kind} × ${key.name}: through to PostgreSQL ${Date.now() - started} ms after its line was installed`,
      );
    },
  );
});

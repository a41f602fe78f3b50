/**
 * The customer clients a reverse tunnel meets (issue 13): OpenSSH `ssh`, `autossh`, PuTTY `plink`
 * and Dropbear `dbclient`, each with every key type a tunnel accepts, reach a real PostgreSQL
 * through `connect`. Each cell creates a tunnel with the customer's own public key through the
 * API and runs, as a throwaway Unix user, the client's command as given to customers:
 * `reverse.commands.ssh` / `.autossh` / `.plink` verbatim, and for Dropbear the command block of
 * docs/reverse-tunnel-clients.md verbatim. Stock OpenSSH must land on AES-GCM (its own `-v` output
 * says so), Dropbear (which has none) on something else that works.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { shellArg } from '../../shared/quoting';
import type { Tunnel } from '../../shared/schemas';
import { customerFor, requireTools, sshKeygen } from '../helpers/customer';
import { createReverseWhenAvailable, startTestStack, type TestStack } from '../helpers/gateway-stack';
import { type Postgres, requirePostgres, startPostgres } from '../helpers/postgres';

type ClientName = 'ssh' | 'autossh' | 'plink' | 'dbclient';

interface KeyKind {
  label: string;
  type: 'ed25519' | 'rsa' | 'ecdsa';
  bits?: number;
  /** The signature a login with it carries, RSA aside (that depends on the client). */
  signature?: string;
}

const KEYS: KeyKind[] = [
  { label: 'ed25519', type: 'ed25519', signature: 'ssh-ed25519' },
  { label: 'RSA 3072', type: 'rsa', bits: 3072 },
  { label: 'ECDSA P-256', type: 'ecdsa', bits: 256, signature: 'ecdsa-sha2-nistp256' },
  { label: 'ECDSA P-384', type: 'ecdsa', bits: 384, signature: 'ecdsa-sha2-nistp384' },
  { label: 'ECDSA P-521', type: 'ecdsa', bits: 521, signature: 'ecdsa-sha2-nistp521' },
];

interface Client {
  tools: string[];
  /** The key as this client reads it: OpenSSH's file, or converted as its instructions say. */
  keyFormat: 'openssh' | 'ppk (puttygen)' | 'dropbear (dropbearconvert, in the documented block)';
  /** The endpoint's view of it: its identification line, the set it is offered, what it picks. */
  identification: RegExp;
  profile: 'aes-gcm' | 'compatible';
  cipher: RegExp;
  /** How it signs with an RSA key: the strongest the endpoint announces that it has. */
  rsaSignature: 'rsa-sha2-512' | 'rsa-sha2-256';
}

const CLIENTS: Record<ClientName, Client> = {
  ssh: {
    tools: ['ssh'],
    keyFormat: 'openssh',
    identification: /^SSH-2\.0-OpenSSH_/,
    profile: 'aes-gcm',
    cipher: /^aes(128|256)-gcm@openssh\.com$/,
    rsaSignature: 'rsa-sha2-512',
  },
  autossh: {
    tools: ['autossh', 'ssh'],
    keyFormat: 'openssh',
    identification: /^SSH-2\.0-OpenSSH_/,
    profile: 'aes-gcm',
    cipher: /^aes(128|256)-gcm@openssh\.com$/,
    rsaSignature: 'rsa-sha2-512',
  },
  plink: {
    tools: ['plink', 'puttygen'],
    keyFormat: 'ppk (puttygen)',
    identification: /^SSH-2\.0-PuTTY_Release_/,
    profile: 'aes-gcm',
    cipher: /^aes(128|256)-gcm@openssh\.com$/,
    rsaSignature: 'rsa-sha2-512',
  },
  dbclient: {
    tools: ['dbclient', 'dropbearconvert'],
    keyFormat: 'dropbear (dropbearconvert, in the documented block)',
    identification: /^SSH-2\.0-dropbear_/,
    profile: 'compatible',
    // Dropbear 2022.83 lists chacha20-poly1305 first, then AES-CTR; it has no AES-GCM.
    cipher: /^(chacha20-poly1305@openssh\.com|aes(128|256)-ctr)$/,
    rsaSignature: 'rsa-sha2-256',
  },
};

/**
 * Combinations a client cannot do itself, with the reason: none for these versions (OpenSSH 9.2,
 * PuTTY 0.78 and Dropbear 2022.83 all take every key type a tunnel accepts, PuTTY after puttygen,
 * Dropbear after dropbearconvert). An entry here removes its cell and must say why.
 */
const CANNOT: readonly { client: ClientName; key: string; why: string }[] = [];

const CELLS = (Object.keys(CLIENTS) as ClientName[]).flatMap((client) =>
  KEYS.filter((key) => !CANNOT.some((c) => c.client === client && c.key === key.label)).map((key) => ({
    client,
    key,
  })),
);

/** Generous: a cell takes a few seconds, but CI machines are shared and slow to start processes. */
const CELL_TIMEOUT_MS = 120_000;

/** One customer key per type, shared by the four clients' tunnels (each has its own tunnel and user). */
const keys = new Map<string, ReturnType<typeof sshKeygen>>();
function keyOf(kind: KeyKind) {
  const key = keys.get(kind.label) ?? sshKeygen(kind.type, kind.bits);
  keys.set(kind.label, key);
  return key;
}

const isUp = (t: Tunnel) => t.status.state === 'up' && t.connect !== null;

/** The Dropbear block of the clients page, as customers copy it. */
async function documentedDbclientBlock(): Promise<string> {
  const page = await readFile(new URL('../../docs/reverse-tunnel-clients.md', import.meta.url), 'utf8');
  const blocks = [...page.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  const block = blocks.find((b) => /^dbclient /m.test(b));
  if (!block) throw new Error('docs/reverse-tunnel-clients.md has no sh block with a dbclient command');
  return block;
}

/** The `-R` value of `reverse.commands.ssh` (single-quoted there when it holds brackets). */
function forwardOf(sshCommand: string): string {
  const match = / -R (?:'([^']+)'|(\S+)) /.exec(sshCommand);
  const forward = match?.[1] ?? match?.[2];
  if (!forward) throw new Error(`no -R in ${sshCommand}`);
  return forward;
}

function psql(port: number, sql: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'psql',
      ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-w', '-Atc', sql],
      { timeout: 20_000 },
      (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
    );
  });
}

describe('customer clients × key types through a reverse tunnel to PostgreSQL', () => {
  let stack: TestStack;
  let postgres: Postgres;
  let dbclientBlock: string;

  beforeAll(async () => {
    requireTools(
      'psql',
      'ssh-keygen',
      'runuser',
      'useradd',
      'userdel',
      'pgrep',
      ...new Set(Object.values(CLIENTS).flatMap((c) => c.tools)),
    );
    requirePostgres();
    dbclientBlock = await documentedDbclientBlock();
    [stack, postgres] = await Promise.all([
      startTestStack({ portRange: '13300-13599', heartbeatIntervalMs: 1_000 }),
      startPostgres(),
    ]);
  });

  afterAll(async () => {
    await Promise.all([stack?.stop(), postgres?.stop()]);
  });

  it.concurrent.for(CELLS)(
    '$client with an $key.label key',
    { timeout: CELL_TIMEOUT_MS },
    async ({ client, key }, { expect }) => {
      const spec = CLIENTS[client];
      const pair = await keyOf(key);
      const tunnel = await createReverseWhenAvailable(
        stack,
        { host: '127.0.0.1', port: postgres.port },
        pair.publicKey,
      );
      const reverse = tunnel.reverse;
      if (!reverse) throw new Error('no reverse block');
      const customer = await customerFor(tunnel, pair.privateKey);
      try {
        let command: string;
        if (client === 'ssh' || client === 'autossh') {
          // The customer's own ssh_config, not the command: `-v`'s kex lines on stderr.
          await customer.writeFile('.ssh/config', 'LogLevel DEBUG1\n');
          command = reverse.commands[client];
        } else if (client === 'plink') {
          const converted = await customer.exec(
            `puttygen ~/.ssh/tunnelkeeper_${tunnel.id} -O private -o ~/.ssh/tunnelkeeper_${tunnel.id}.ppk`,
          );
          expect(converted.code, converted.stderr).toBe(0);
          if (!reverse.commands.plink) throw new Error('no plink command for this tunnel');
          command = reverse.commands.plink;
        } else {
          const [, type, base64] = reverse.knownHostsLine.split(' ');
          const variables = {
            ID: tunnel.id,
            HOST: reverse.sshHost,
            PORT: String(reverse.sshPort),
            FORWARD: forwardOf(reverse.commands.ssh),
            HOSTKEY: `${type} ${base64}`,
          };
          const assignments = Object.entries(variables).map(([name, value]) => `${name}=${shellArg(value)}`);
          command = `${assignments.join('\n')}\n${dbclientBlock}`;
        }
        const run = customer.start(command);
        await stack.waitForTunnel(tunnel.id, isUp, 30_000, () => `${run.stdout()}\n${run.stderr()}`);

        const query = await psql(
          reverse.remotePort,
          "select 'reached PostgreSQL on ' || current_setting('port')",
        );
        expect(query.stdout.trim(), query.stderr).toBe(`reached PostgreSQL on ${postgres.port}`);

        const logins = stack.logsWith({ msg: 'ssh login algorithms', tunnelId: tunnel.id });
        expect(logins.length).toBeGreaterThanOrEqual(1);
        const login = logins.at(-1);
        expect(String(login?.client)).toMatch(spec.identification);
        expect(login?.profile).toBe(spec.profile);
        expect(String(login?.cipher)).toMatch(spec.cipher);
        expect(login?.signature).toBe(key.signature ?? spec.rsaSignature);
        if (client === 'ssh' || client === 'autossh') {
          expect(run.stderr()).toMatch(
            /kex: server->client cipher: aes(128|256)-gcm@openssh\.com MAC: <implicit>/,
          );
        }
        expect(run.exit(), `${client} still running`).toBeUndefined();
      } finally {
        await customer.dispose();
      }
    },
  );
});

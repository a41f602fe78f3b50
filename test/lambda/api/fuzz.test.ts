/**
 * Bad input never crashes the API and everything it accepts renders safely (issue 12): a fuzzer
 * over every route of the app's own `/openapi.json` (real DynamoDB Local table, file secret store)
 * sends thousands of malformed requests and must get no 5xx; every tunnel it manages to create or
 * change is read back by the real parsers of its rendered outputs (`sh -n`, cron and `crontab`,
 * `systemd-analyze verify`, `ssh-keygen -l`). Tables of awkward-but-valid inputs and of inputs that
 * must be refused with a 422 naming the field complete it.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TunnelSchema } from '../../../shared/schemas';
import { createTestApi } from '../../helpers/api';
import {
  AWKWARD_HOSTS,
  type BodyContext,
  DEEP_VALUES,
  HOSTILE_STRINGS,
  hostileValue,
  isSymbolic,
  type Operation,
  operationsOf,
  RAW_BODIES,
  valueArb,
} from '../../helpers/openapi-fuzz';
import { type RenderedTunnel, renderProblems, requireRenderCheckTools } from '../../helpers/render-check';

const run = promisify(execFile);

/** Requests the fuzzer sends (cleanup and fixture requests come on top). */
const FUZZ_REQUESTS = 2_100;
/** Tunnels the fuzzer created and keeps for its DELETEs, per workspace (the quota is 100). */
const MAX_VICTIMS = 10;
/** Requests in flight at once. */
const CONCURRENCY = 6;
/** A new seed each run, printed with every failure so that it can be replayed (FUZZ_SEED=<seed>). */
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;

type Api = Awaited<ReturnType<typeof createTestApi>>;
type Workspace = { id: string; apiKey: string };

interface Keys {
  /** OpenSSH public key lines: ed25519, ecdsa-256/384/521, rsa-2048/3072 (RSA-4096: rsa-public-check.test.ts). */
  publicKeys: { type: string; line: string }[];
  /** Private keys of the same types (OpenSSH format), a PEM RSA key and an encrypted one. */
  privateKeys: { type: string; pem: string; passphrase?: string }[];
  /** Public key fields that must be refused: bogus RSA arithmetic, wrong formats, injections. */
  badPublicKeys: string[];
  /** Private key fields that must be refused. */
  badPrivateKeys: string[];
}

/** An `ssh-rsa` line with the given exponent and modulus, whatever they are. */
function rsaLine(e: bigint, n: bigint): string {
  const mpint = (v: bigint) => {
    const hex = v.toString(16);
    const bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
    return (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
  };
  const field = (b: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(b.length);
    return Buffer.concat([length, b]);
  };
  return `ssh-rsa ${Buffer.concat([field(Buffer.from('ssh-rsa')), field(mpint(e)), field(mpint(n))]).toString('base64')}`;
}

const realRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const realJwk = realRsa.privateKey.export({ format: 'jwk' });
const realN = BigInt(`0x${Buffer.from(realJwk.n ?? '', 'base64url').toString('hex')}`);

/** A PKCS#1 RSA private key whose public exponent is `e` (OpenSSL imports it without checking). */
function rsaPrivateKeyWithE(e: bigint): string {
  const hex = e.toString(16);
  const jwk = { ...realJwk, e: Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex').toString('base64url') };
  return createPrivateKey({ key: jwk, format: 'jwk' }).export({ type: 'pkcs1', format: 'pem' }).toString();
}

function badKeys(
  good: Pick<Keys, 'publicKeys' | 'privateKeys'>,
): Pick<Keys, 'badPublicKeys' | 'badPrivateKeys'> {
  const ed = good.publicKeys[0]?.line ?? '';
  const edPem = good.privateKeys[0]?.pem ?? '';
  const encrypted = good.privateKeys.find((k) => k.passphrase)?.pem ?? '';
  return {
    badPublicKeys: [
      rsaLine(65537n, realN + 1n),
      rsaLine(1n, realN),
      rsaLine(3n, realN * 5n),
      rsaLine(65536n, realN),
      rsaLine(realN + 2n, realN),
      rsaLine(65537n, 751n * realN),
      rsaLine((1n << 300n) + 1n, realN),
      'ssh-rsa AAAA',
      `${ed.slice(0, 40)}`,
      `ssh-dss ${ed.split(' ')[1]}`,
      `ssh-ed25519-cert-v01@openssh.com ${ed.split(' ')[1]}`,
      `sk-ssh-ed25519@openssh.com ${ed.split(' ')[1]}`,
      `restrict,command="sh" ${ed}`,
      `${ed}\n${ed}`,
      `${ed} comment\u0000`,
      `${ed} %h $(id) \`id\` "q" 'q' \u202e`,
      `${ed}${' '.repeat(16_400)}`,
      edPem,
      '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----',
      '---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----',
      `ecdsa-sha2-nistp256 ${ed.split(' ')[1]}`,
    ],
    badPrivateKeys: [
      rsaPrivateKeyWithE(65538n),
      rsaPrivateKeyWithE(1n),
      ed,
      edPem.slice(0, 200),
      `${edPem}${edPem}`,
      edPem.replace('OPENSSH PRIVATE KEY', 'DSA PRIVATE KEY'),
      'PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none',
      encrypted,
      `-----BEGIN OPENSSH PRIVATE KEY-----\n${'A'.repeat(100)}\n-----END OPENSSH PRIVATE KEY-----`,
      edPem.replace(/\n/g, '\r\n').replace('b3Blbn', 'b3Blbm'),
    ],
  };
}

const KEY_SPECS: [string, string[]][] = [
  ['ed25519', ['-t', 'ed25519']],
  ['ecdsa-256', ['-t', 'ecdsa', '-b', '256']],
  ['ecdsa-384', ['-t', 'ecdsa', '-b', '384']],
  ['ecdsa-521', ['-t', 'ecdsa', '-b', '521']],
  ['rsa-2048', ['-t', 'rsa', '-b', '2048']],
  ['rsa-3072', ['-t', 'rsa', '-b', '3072']],
  ['rsa-2048-pem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM']],
  ['ed25519-encrypted', ['-t', 'ed25519', '-a', '16']],
];

async function sshKeygenAll(): Promise<Keys> {
  const dir = await mkdtemp(join(tmpdir(), 'tk-fuzz-keys-'));
  try {
    const made = await Promise.all(
      KEY_SPECS.map(async ([type, args]) => {
        const path = join(dir, type);
        const passphrase = type.endsWith('encrypted') ? 'fuzz pass phrase' : '';
        await run('ssh-keygen', ['-q', ...args, '-N', passphrase, '-C', `fuzz-${type}`, '-f', path]);
        return {
          type,
          line: (await readFile(`${path}.pub`, 'utf8')).trim(),
          pem: await readFile(path, 'utf8'),
          passphrase: passphrase || undefined,
        };
      }),
    );
    const good = {
      publicKeys: made
        .filter((k) => !k.type.includes('-pem') && !k.passphrase)
        .map(({ type, line }) => ({ type, line })),
      privateKeys: made.map(({ type, pem, passphrase }) =>
        passphrase ? { type, pem, passphrase } : { type, pem },
      ),
    };
    return { ...good, ...badKeys(good) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A request as fast-check plans it; ids, credentials and keys are bound when it is sent. */
interface Plan {
  op: Operation;
  method: string;
  pathIds: PathId[];
  query: string;
  auth: Auth;
  contentType?: string;
  ifNoneMatch?: string;
  body?: { json: unknown } | { raw: string | Uint8Array };
}
type PathId = { kind: 'own' | 'other'; index: number } | { kind: 'raw'; text: string; encode: boolean };
type Auth = 'own' | 'other' | 'admin' | 'none' | { header: string };

const TUNNEL_ID = /^tun_[a-z2-7]{16}$/;
const isWellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8') === s;

function planArb(operations: Operation[], ctx: BodyContext): fc.Arbitrary<Plan> {
  const pathId: fc.Arbitrary<PathId> = fc.oneof(
    { weight: 10, arbitrary: fc.record({ kind: fc.constant('own' as const), index: fc.nat({ max: 1 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('other' as const), index: fc.constant(0) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('raw' as const),
        text: fc.oneof(
          fc.stringMatching(TUNNEL_ID),
          fc.constantFrom(...HOSTILE_STRINGS),
          fc.string({ unit: 'binary', maxLength: 30 }),
        ),
        encode: fc.constant(true),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('raw' as const),
        text: fc.constantFrom(
          '%zz',
          '%',
          '%00',
          '%2F',
          '..',
          '.',
          '%E0%A4',
          'tun_%61aaaaaaaaaaaaaaa',
          '%F0%9F%94%A5',
        ),
        encode: fc.constant(false),
      }),
    },
  );
  const auth: fc.Arbitrary<Auth> = fc.oneof(
    { weight: 24, arbitrary: fc.constant('own' as const) },
    { weight: 2, arbitrary: fc.constantFrom('other' as const, 'admin' as const, 'none' as const) },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom(
          'Bearer ',
          'Bearer x',
          'Basic dXNlcjpwYXNz',
          `Bearer tk_${'A'.repeat(43)}`,
          `Bearer ${'k'.repeat(8_000)}`,
          'Bearer é',
          'Bearer tk_$(id)',
          'Bearer%20tk',
          'Token abc',
        )
        .map((header) => ({ header })),
    },
  );
  const queryValue = (schema: Operation['query'][number]['schema'], name: string) =>
    valueArb(schema, name, ctx).map((v) => (typeof v === 'string' ? v : (JSON.stringify(v) ?? '')));
  // Creates and changes reach the renderers: send more of them (a create costs ~10 cheap requests),
  // tunnel creates most, as every rendering starts from a tunnel created.
  const weightOf = (op: Operation) =>
    op.security !== 'apiKey' || !op.body
      ? 1
      : op.method === 'POST' && op.path === '/v1/tunnels'
        ? 6
        : op.pathParams.length === 0 || op.method === 'PATCH'
          ? 3
          : 1;
  // One arbitrary per operation, built once (building stringMatching and friends is not cheap).
  const planFor = (op: Operation): fc.Arbitrary<Plan> => {
    const query = fc
      .tuple(
        fc.tuple(
          ...op.query.map((q) => fc.option(queryValue(q.schema, q.name), { nil: undefined })),
          fc.constant(undefined),
        ),
        fc.option(fc.tuple(fc.constantFrom(...HOSTILE_STRINGS.slice(0, 40)), fc.string({ maxLength: 10 })), {
          nil: undefined,
        }),
        fc.option(
          fc.constantFrom('%zz=1', 'limit=1&limit=2', 'cursor=%E0%A4', 'state[]=up', '&&&', 'limit'),
          { nil: undefined },
        ),
      )
      .map(([values, extra, raw]) => {
        const pairs: string[] = [];
        op.query.forEach((q, i) => {
          const value = values[i];
          if (value !== undefined) pairs.push(`${q.name}=${encodeURIComponent(wellFormed(value))}`);
        });
        if (extra)
          pairs.push(
            `${encodeURIComponent(wellFormed(extra[0]))}=${encodeURIComponent(wellFormed(extra[1]))}`,
          );
        if (raw) pairs.push(raw);
        return pairs.join('&');
      });
    const body: fc.Arbitrary<Plan['body']> = op.body
      ? fc.oneof(
          { weight: 12, arbitrary: valueArb(op.body, '', ctx).map((json) => ({ json })) },
          { weight: 2, arbitrary: fc.constantFrom(...RAW_BODIES).map((raw) => ({ raw })) },
          { weight: 1, arbitrary: hostileValue.map((json) => ({ json })) },
          { weight: 1, arbitrary: fc.constant(undefined) },
        )
      : fc.oneof(
          { weight: 6, arbitrary: fc.constant(undefined) },
          { weight: 1, arbitrary: fc.constantFrom(...RAW_BODIES).map((raw) => ({ raw })) },
        );
    return fc.record({
      op: fc.constant(op),
      method: fc.oneof(
        { weight: 20, arbitrary: fc.constant(op.method) },
        { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD') },
      ),
      pathIds: fc
        .tuple(...op.pathParams.map(() => pathId), fc.constant(undefined))
        .map((ids) => ids.filter((id) => id !== undefined)),
      query,
      auth,
      contentType: fc.constantFrom(
        'application/json',
        'application/json',
        'application/json',
        undefined,
        'text/plain',
        'application/json; charset=utf-16',
        'multipart/form-data; boundary=x',
      ),
      ifNoneMatch: fc.option(fc.constantFrom('*', '"abc"', 'W/"x"', 'garbage', '"a", "b"', '"'.repeat(100)), {
        nil: undefined,
      }),
      body,
    });
  };
  return fc.oneof(...operations.map((op) => ({ weight: weightOf(op), arbitrary: planFor(op) })));
}

function wellFormed(s: string): string {
  return isWellFormed(s) ? s : Buffer.from(s, 'utf8').toString('utf8');
}

/** Replaces symbols in a planned body by real key material. */
function bind(value: unknown, keys: Keys): unknown {
  if (isSymbolic(value)) {
    if (value.symbol === 'deep') return DEEP_VALUES[value.index];
    if (value.symbol === 'badPublicKey') return keys.badPublicKeys[value.index % keys.badPublicKeys.length];
    if (value.symbol === 'badPrivateKey')
      return keys.badPrivateKeys[value.index % keys.badPrivateKeys.length];
    if (value.symbol === 'publicKey') return keys.publicKeys[value.index % keys.publicKeys.length]?.line;
    if (value.symbol === 'privateKey') return keys.privateKeys[value.index % keys.privateKeys.length]?.pem;
    return undefined;
  }
  if (Array.isArray(value)) return value.map((v) => bind(v, keys));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = bind(v, keys);
    // A passphrase goes with the encrypted key when the plan chose it, so decryption runs too.
    const chosen =
      'privateKey' in value && isSymbolic(value.privateKey) && value.privateKey.symbol === 'privateKey';
    const key = chosen ? keys.privateKeys.find((k) => k.pem === out.privateKey) : undefined;
    if (key?.passphrase && typeof out.passphrase !== 'string') out.passphrase = key.passphrase;
    return out;
  }
  return value;
}

/** What a failing request looked like, without credentials or key material. */
function describeRequest(
  method: string,
  url: string,
  headers: Record<string, string>,
  body: unknown,
): string {
  const shown = { ...headers };
  if (shown.Authorization)
    shown.Authorization = `${shown.Authorization.split(' ')[0]} <${shown.Authorization.length} chars>`;
  const redact = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(redact);
    if (v && typeof v === 'object') {
      return Object.fromEntries(
        Object.entries(v).map(([k, x]) =>
          ['privateKey', 'password', 'passphrase'].includes(k) && typeof x === 'string'
            ? [k, `<${x.length} chars>`]
            : [k, redact(x)],
        ),
      );
    }
    return typeof v === 'string' && v.length > 300 ? `${v.slice(0, 60)}…<${v.length} chars>` : v;
  };
  const text =
    body === undefined
      ? ''
      : body instanceof Uint8Array
        ? `<${body.length} bytes: ${Buffer.from(body).toString('hex').slice(0, 40)}>`
        : typeof body === 'string'
          ? body.length > 300
            ? `${body.slice(0, 60)}…<${body.length} chars>`
            : body
          : JSON.stringify(redact(body));
  return `${method} ${url.length > 300 ? `${url.slice(0, 200)}…` : url} ${JSON.stringify(shown)} ${text}`;
}

let api: Api;
let keys: Keys;
let own: Workspace;
let other: Workspace;

beforeAll(async () => {
  requireRenderCheckTools();
  [api, keys] = await Promise.all([createTestApi(), sshKeygenAll()]);
  own = await api.newWorkspace('fuzz-own');
  other = await api.newWorkspace('fuzz-other');
}, 60_000);

afterAll(async () => {
  await api?.close();
});

const reverseBody = (name: string) => ({
  type: 'reverse',
  name,
  service: { host: 'db.internal', port: 5432 },
});
const standardBody = (name: string) => ({
  type: 'standard',
  name,
  ssh: { host: 'bastion.example.com', user: 'tunnel' },
  service: { host: '10.0.0.5', port: 5432 },
});

async function createOk(ws: Workspace, body: unknown): Promise<RenderedTunnel & { id: string }> {
  const res = await api.call('POST', '/v1/tunnels', ws.apiKey, body);
  expect(res.status, res.text).toBe(201);
  return res.json;
}

describe('a fuzzer over every route of /openapi.json', () => {
  it(`gets no 5xx from ${FUZZ_REQUESTS} malformed requests, and every tunnel it creates renders for its real parsers`, async () => {
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const doc = await (await api.app.request('/openapi.json')).json();
    const { operations, resolve } = operationsOf(doc);
    expect(operations.length).toBeGreaterThanOrEqual(10);
    const ctx: BodyContext = {
      resolve,
      publicKeys: keys.publicKeys.length,
      privateKeys: keys.privateKeys.length,
    };

    // Tunnels the path ids point at. A DELETE never takes them: it takes one of the tunnels the
    // fuzzer created (kept as victims), so the other requests keep finding their targets.
    const fixtures = {
      own: [
        await createOk(own, reverseBody('own-reverse')),
        await createOk(own, standardBody('own-standard')),
      ],
      other: [await createOk(other, reverseBody('other-reverse'))],
    };
    const workspaceOfId = new Map<string, string>();
    for (const t of fixtures.own) workspaceOfId.set(t.id, own.id);
    for (const t of fixtures.other) workspaceOfId.set(t.id, other.id);
    const victims = { own: [] as string[], other: [] as string[] };
    type Victim = { kind: 'own' | 'other'; id: string };
    /** A DELETE's path id: a victim, added to `taken` (given back unless the DELETE removed it). */
    const targetOf = (p: PathId, method: string, taken: Victim[]): string => {
      if (p.kind === 'raw') return p.encode ? encodeURIComponent(wellFormed(p.text)) : p.text;
      if (method !== 'DELETE')
        return fixtures[p.kind][p.index % fixtures[p.kind].length]?.id ?? 'tun_missing';
      const victim = victims[p.kind].pop();
      if (!victim) return 'tun_aaaaaaaaaaaaaaaa';
      taken.push({ kind: p.kind, id: victim });
      return victim;
    };
    // A DELETE of another route (a connector, a channel), refused, or with the other workspace's
    // key leaves the tunnel in place: kept as a victim, not leaked against the quota.
    const giveBack = (taken: Victim[]) => {
      for (const { kind, id } of taken) victims[kind].push(id);
    };

    const rendered = new Map<string, RenderedTunnel>();
    // Every tunnel a 2xx carries must match the contract's schema; its renderings are checked below.
    const collect = (value: unknown, request: () => string) => {
      if (!value || typeof value !== 'object' || !('id' in value) || !('type' in value)) return;
      const parsed = TunnelSchema.safeParse(value);
      if (!parsed.success) {
        failures.push(
          `a tunnel off the contract's schema (${parsed.error.message.slice(0, 200)}) for ${request()}`,
        );
        return;
      }
      const t = parsed.data;
      rendered.set(JSON.stringify([t.id, t.service, t.authorizedKeysLine, t.reverse?.commands]), t);
    };
    const secrets = [
      api.adminToken,
      own.apiKey,
      other.apiKey,
      ...keys.privateKeys.map((k) => k.pem.split('\n')[2] ?? ''),
    ];
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let sent = 0;
    let created = 0;

    // Plans come from fast-check; they are sent a few at a time so DynamoDB Local's latency
    // overlaps. Anything thrown is recorded with the request, never thrown.
    const plans = fc.sample(planArb(operations, ctx), { numRuns: FUZZ_REQUESTS, seed });
    let next = 0;
    const worker = async () => {
      for (let plan = plans[next++]; plan; plan = plans[next++]) {
        await send(plan).catch((err: unknown) => {
          failures.push(
            `the fuzzer failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
          );
        });
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    for (const id of victims.own) await deleteCreated(id, own.apiKey);
    for (const id of victims.other) await deleteCreated(id, other.apiKey);

    async function deleteCreated(id: string, token: string | undefined): Promise<void> {
      const deleted = await api.app.request(`/v1/tunnels/${id}`, {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${token}` },
      });
      if (deleted.status !== 204) failures.push(`DELETE of created ${id} answered ${deleted.status}`);
    }

    async function send(plan: Plan): Promise<void> {
      const taken: Victim[] = [];
      const ids = plan.pathIds.map((p) => targetOf(p, plan.method, taken));
      let path = plan.op.path;
      for (const [i, name] of plan.op.pathParams.entries()) path = path.replace(`{${name}}`, ids[i] ?? '');
      const url = plan.query ? `${path}?${plan.query}` : path;
      const headers: Record<string, string> = {};
      const token =
        plan.auth === 'own'
          ? plan.op.security === 'adminToken'
            ? api.adminToken
            : own.apiKey
          : plan.auth === 'other'
            ? other.apiKey
            : plan.auth === 'admin'
              ? api.adminToken
              : undefined;
      if (token) headers.Authorization = `Bearer ${token}`;
      else if (typeof plan.auth === 'object') headers.Authorization = plan.auth.header;
      if (plan.contentType) headers['Content-Type'] = plan.contentType;
      if (plan.ifNoneMatch) headers['If-None-Match'] = plan.ifNoneMatch;
      const bound = plan.body && 'json' in plan.body ? bind(plan.body.json, keys) : undefined;
      let payload: string | Uint8Array | undefined;
      if (plan.body && 'raw' in plan.body) payload = plan.body.raw;
      else if (plan.body) payload = JSON.stringify(bound) ?? 'undefined';
      const withBody = !['GET', 'HEAD'].includes(plan.method);

      sent++;
      const shown = () =>
        describeRequest(plan.method, url, headers, withBody ? (bound ?? payload) : undefined);
      let res: Response;
      let text: string;
      try {
        res = await api.app.request(url, {
          method: plan.method,
          headers,
          body: withBody ? payload : undefined,
        });
        text = plan.method === 'HEAD' ? '' : await res.text();
      } catch (err) {
        failures.push(`the request threw ${err instanceof Error ? err.message : String(err)}: ${shown()}`);
        giveBack(taken);
        return;
      }
      if (plan.op.path !== '/v1/tunnels/{id}' || res.status !== 204) giveBack(taken);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status >= 500) failures.push(`${res.status} ${text.slice(0, 200)} for ${shown()}`);

      const keyWorkspace = token === own.apiKey ? own.id : token === other.apiKey ? other.id : undefined;
      const idWorkspaces = ids.flatMap((id) => workspaceOfId.get(id) ?? []);
      if (res.ok && keyWorkspace && idWorkspaces.some((w) => w !== keyWorkspace)) {
        failures.push(`${res.status} for another workspace's tunnel: ${shown()}`);
      }
      for (const secret of secrets) {
        if (secret && text.includes(secret))
          failures.push(`a secret came back in the response to ${shown()}`);
      }

      if (!res.ok || !text || !res.headers.get('content-type')?.includes('json')) return;
      const json: unknown = JSON.parse(text);
      // Only the tunnel routes answer with tunnels (an alert channel has an id and a type too).
      if (!plan.op.path.startsWith('/v1/tunnels')) return;
      collect(json, shown);
      if (json && typeof json === 'object' && 'items' in json && Array.isArray(json.items)) {
        for (const item of json.items) collect(item, shown);
      }
      if (plan.method === 'POST' && plan.op.path === '/v1/tunnels' && res.status === 201 && keyWorkspace) {
        created++;
        const id = z.object({ id: z.string() }).parse(json).id;
        workspaceOfId.set(id, keyWorkspace);
        const pool = keyWorkspace === own.id ? victims.own : victims.other;
        // Created tunnels count against the workspace's quota: keep a few for DELETEs, delete the rest.
        if (pool.length < MAX_VICTIMS) pool.push(id);
        else await deleteCreated(id, token);
      }
    }
    const fuzzMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);

    // No request left a workspace unable to list its tunnels.
    for (const ws of [own, other]) {
      const listed = await api.call('GET', '/v1/tunnels?limit=100', ws.apiKey);
      if (listed.status !== 200)
        failures.push(`GET /v1/tunnels of ${ws.id} answers ${listed.status} after the fuzz`);
    }

    const tunnels = [...rendered.values()];
    const reverseCount = tunnels.filter((t) => t.type === 'reverse').length;
    const problems = await renderProblems(tunnels);
    const totalMs = performance.now() - started;
    console.info(
      `fuzz (seed ${seed}): ${sent} requests in ${(fuzzMs / 1000).toFixed(1)} s (${((cpu.user + cpu.system) / 1e6).toFixed(1)} s of this process's CPU), ${created} tunnels created, ` +
        `${tunnels.length} renderings checked (${reverseCount} reverse; total ${(totalMs / 1000).toFixed(1)} s); statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
    expect(failures.slice(0, 20), `fast-check seed ${seed}`).toEqual([]);
    expect(problems.slice(0, 20), `fast-check seed ${seed}`).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(2_000);
    // The fuzzer must reach the renderers, not only the validators.
    expect(created).toBeGreaterThanOrEqual(20);
    expect(reverseCount).toBeGreaterThanOrEqual(10);
    expect(tunnels.length - reverseCount).toBeGreaterThanOrEqual(10);
  }, 120_000);
});

describe('valid but awkward inputs', () => {
  it('creates a tunnel for each and every output reads back with its real parser', async () => {
    const created: RenderedTunnel[] = [];
    const bodies: unknown[] = [];
    for (const host of AWKWARD_HOSTS) {
      bodies.push({ type: 'reverse', name: `svc ${host}`.slice(0, 100), service: { host, port: 5432 } });
      bodies.push({
        ...standardBody(`std ${host}`.slice(0, 100)),
        service: { host, port: 65535 },
        ssh: { host, port: 1, user: 'u_1.x@y-z' },
      });
    }
    bodies.push(reverseBody('n'.repeat(100)), reverseBody('名前 🔥 %h $(id) `id` "q" \'s\' \u202e'));
    for (const { type, line } of keys.publicKeys)
      bodies.push({ ...reverseBody(`customer ${type}`), publicKey: `  ${line}  ` });
    for (const key of keys.privateKeys) {
      bodies.push({
        ...standardBody(`private ${key.type}`),
        auth: {
          method: 'private_key',
          privateKey: key.pem,
          ...(key.passphrase ? { passphrase: key.passphrase } : {}),
        },
      });
    }
    for (const keyType of ['ed25519', 'ecdsa', 'rsa']) {
      bodies.push({ ...standardBody(`generated ${keyType}`), auth: { method: 'generated', keyType } });
    }
    bodies.push({ ...standardBody('password'), auth: { method: 'password', password: `p'"%h$(id)\u0000` } });
    for (const body of bodies) {
      const tunnel = await createOk(own, body);
      created.push(tunnel);
      // And after a PATCH to another awkward service.
      const patched = await api.call('PATCH', `/v1/tunnels/${tunnel.id}`, own.apiKey, {
        service: { host: tunnel.service.host.includes(':') ? 'db_2.internal.' : 'fd00::2', port: 1 },
      });
      expect(patched.status, patched.text).toBe(200);
      created.push(patched.json);
    }
    expect(await renderProblems(created)).toEqual([]);
    const listed = await api.call('GET', '/v1/tunnels?limit=100', own.apiKey);
    expect(listed.status).toBe(200);
    for (const t of created) await api.call('DELETE', `/v1/tunnels/${t.id}`, own.apiKey);
  }, 60_000);
});

describe('inputs that can never be valid', () => {
  const zone = /zone id.*cannot be reached from our network or through a bastion/;
  const rsaLine = (e: bigint, n: bigint) => {
    const mp = (v: bigint) => {
      let hex = v.toString(16);
      if (hex.length % 2) hex = `0${hex}`;
      const bytes = Buffer.from(hex, 'hex');
      return (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
    };
    const str = (b: Buffer) =>
      Buffer.concat([Buffer.from([0, 0, (b.length >> 8) & 0xff, b.length & 0xff]), b]);
    return `ssh-rsa ${Buffer.concat([str(Buffer.from('ssh-rsa')), str(mp(e)), str(mp(n))]).toString('base64')}`;
  };
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = rsa.privateKey.export({ format: 'jwk' });
  const n = BigInt(`0x${Buffer.from(jwk.n ?? '', 'base64url').toString('hex')}`);
  const withE = (e: bigint) => {
    let hex = e.toString(16);
    if (hex.length % 2) hex = `0${hex}`;
    return createPrivateKey({
      key: { ...jwk, e: Buffer.from(hex, 'hex').toString('base64url') },
      format: 'jwk',
    })
      .export({ type: 'pkcs1', format: 'pem' })
      .toString();
  };

  it.each([
    [
      'a zone id in a reverse service',
      'service.host',
      () => ({ ...reverseBody('z'), service: { host: 'fe80::1%eth0', port: 5432 } }),
      zone,
    ],
    [
      'a URL-style zone id',
      'service.host',
      () => ({ ...reverseBody('z'), service: { host: '::1%25lo', port: 5432 } }),
      zone,
    ],
    [
      'a zone id in a standard service',
      'service.host',
      () => ({ ...standardBody('z'), service: { host: 'fe80::1%eth0', port: 5432 } }),
      zone,
    ],
    [
      'a zone id in a bastion',
      'ssh.host',
      () => ({ ...standardBody('z'), ssh: { host: 'fe80::1%eth0', user: 'u' } }),
      zone,
    ],
    [
      'a bracketed IPv6 service',
      'service.host',
      () => ({ ...reverseBody('z'), service: { host: '[::1]', port: 5432 } }),
      /without brackets/,
    ],
    [
      'a shell command as a host',
      'service.host',
      () => ({ ...reverseBody('z'), service: { host: '$(id)', port: 5432 } }),
      /DNS name or an IP/,
    ],
    [
      'an RSA key with an even modulus',
      'publicKey',
      () => ({ ...reverseBody('z'), publicKey: rsaLine(65537n, n + 1n) }),
      /modulus is even/,
    ],
    [
      'an RSA key with e = 1',
      'publicKey',
      () => ({ ...reverseBody('z'), publicKey: rsaLine(1n, n) }),
      /exponent is 1/,
    ],
    [
      'an RSA key with a small factor',
      'publicKey',
      () => ({ ...reverseBody('z'), publicKey: rsaLine(65537n, 3n * n) }),
      /small prime factor/,
    ],
    ['a lone surrogate in the name', 'name', () => reverseBody('a\ud800b'), /valid Unicode/],
    [
      'a lone surrogate in a key comment',
      'publicKey',
      () => ({ ...reverseBody('z'), publicKey: `${keys.publicKeys[0]?.line} laptop\udc00` }),
      /valid Unicode/,
    ],
    [
      'a lone surrogate in a password',
      'auth.password',
      () => ({ ...standardBody('z'), auth: { method: 'password', password: '\ud800' } }),
      /valid Unicode/,
    ],
    [
      'an RSA private key whose public half has an even e',
      'auth.privateKey',
      () => ({ ...standardBody('z'), auth: { method: 'private_key', privateKey: withE(65538n) } }),
      /exponent is even/,
    ],
  ])('refuses %s with 422 on %s, and the workspace still lists', async (_name, field, body, message) => {
    const res = await api.call('POST', '/v1/tunnels', own.apiKey, body());
    expect(res.status, res.text).toBe(422);
    expect(res.json.error.details).toEqual([{ path: field, message: expect.stringMatching(message) }]);
    expect((await api.call('GET', '/v1/tunnels', own.apiKey)).status).toBe(200);
  });

  it.each([
    ['a zone id', 'service.host', { service: { host: 'fe80::1%eth0' } }, zone],
    ['a zone id on the bastion', 'ssh.host', { ssh: { host: 'fe80::1%eth0' } }, zone],
  ])('refuses a PATCH to %s with 422 on %s', async (_name, field, patch, message) => {
    const tunnel = await createOk(own, standardBody('patch-me'));
    const res = await api.call('PATCH', `/v1/tunnels/${tunnel.id}`, own.apiKey, patch);
    expect(res.status, res.text).toBe(422);
    expect(res.json.error.details).toEqual([{ path: field, message: expect.stringMatching(message) }]);
    expect((await api.call('GET', `/v1/tunnels/${tunnel.id}`, own.apiKey)).status).toBe(200);
    await api.call('DELETE', `/v1/tunnels/${tunnel.id}`, own.apiKey);
  });

  it('lists tunnels stored with a zone id before it was refused; PATCH repairs them', async () => {
    const ws = await api.newWorkspace('legacy');
    const at = new Date().toISOString();
    const base = { workspaceId: ws.id, enabled: true, createdAt: at, updatedAt: at, name: 'legacy' };
    const key = keys.publicKeys[0]?.line ?? '';
    const fingerprint = (await createOk(ws, { ...reverseBody('k'), publicKey: key })).publicKeyFingerprint;
    const service = { host: 'fe80::1%eth0', port: 5432 };
    const stored = [
      {
        ...base,
        id: 'tun_legacystandardaa',
        type: 'standard' as const,
        service,
        ssh: { host: 'b.example.com', port: 22, user: 'u' },
      },
      { ...base, id: 'tun_legacyreverseaaa', type: 'reverse' as const, service },
    ];
    for (const record of stored) {
      await api.table.store.createTunnel(
        { ...record, publicKey: key, publicKeyFingerprint: fingerprint },
        { from: 20000, to: 29999 },
      );
    }
    const listed = await api.call('GET', '/v1/tunnels', ws.apiKey);
    expect(listed.status, listed.text).toBe(200);
    const legacyStandard = listed.json.items.find((t: { id: string }) => t.id === 'tun_legacystandardaa');
    expect(legacyStandard.authorizedKeysLine).toBeUndefined();
    const legacyReverse = listed.json.items.find((t: { id: string }) => t.id === 'tun_legacyreverseaaa');
    expect(await renderProblems([legacyReverse])).toEqual([]);

    const repaired = await api.call('PATCH', '/v1/tunnels/tun_legacystandardaa', ws.apiKey, {
      service: { host: 'fe80::1' },
    });
    expect(repaired.status, repaired.text).toBe(200);
    expect(repaired.json.authorizedKeysLine).toContain('permitopen="[fe80::1]:5432"');
  });

  it('refuses a bogus RSA key at rotation with 422 on publicKey', async () => {
    const tunnel = await createOk(own, reverseBody('rotate-me'));
    const res = await api.call('POST', `/v1/tunnels/${tunnel.id}/rotate-key`, own.apiKey, {
      publicKey: rsaLine(4n, n),
    });
    expect(res.status, res.text).toBe(422);
    expect(res.json.error.details).toEqual([
      { path: 'publicKey', message: expect.stringMatching(/exponent is even/) },
    ]);
    await api.call('DELETE', `/v1/tunnels/${tunnel.id}`, own.apiKey);
  });
});

/**
 * Requests for a fuzzer, derived from the app's own `/openapi.json`: every operation it lists, with
 * bodies and query parameters generated from their schemas (mostly valid, so creates succeed and
 * reach the renderers) where any node may be swapped for a hostile value, plus raw bodies that are
 * not JSON at all. Path parameters, credentials and key material are chosen as symbols and bound
 * when the request is sent, so the fuzzer can use ids that exist at that moment.
 */
import fc from 'fast-check';
import { z } from 'zod';

/** The subset of OpenAPI 3.1 the generator reads. */
export type JsonSchema = {
  $ref?: string;
  /** A list in OpenAPI 3.1 for nullable fields, e.g. `["object", "null"]`. */
  type?: string | string[];
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  items?: JsonSchema;
};
const JsonSchemaShape: z.ZodType<JsonSchema> = z.lazy(() =>
  z.looseObject({
    $ref: z.string().optional(),
    type: z.union([z.string(), z.array(z.string())]).optional(),
    enum: z.array(z.unknown()).optional(),
    pattern: z.string().optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    minLength: z.number().optional(),
    maxLength: z.number().optional(),
    properties: z.record(z.string(), JsonSchemaShape).optional(),
    required: z.array(z.string()).optional(),
    oneOf: z.array(JsonSchemaShape).optional(),
    anyOf: z.array(JsonSchemaShape).optional(),
    items: JsonSchemaShape.optional(),
  }),
);
const OperationShape = z.looseObject({
  parameters: z
    .array(z.looseObject({ name: z.string(), in: z.string(), schema: JsonSchemaShape.optional() }))
    .optional(),
  requestBody: z
    .looseObject({
      required: z.boolean().optional(),
      content: z.record(z.string(), z.looseObject({ schema: JsonSchemaShape.optional() })),
    })
    .optional(),
  security: z.array(z.record(z.string(), z.array(z.string()))).optional(),
});
const DocumentShape = z.looseObject({
  paths: z.record(z.string(), z.record(z.string(), z.unknown())),
  components: z.looseObject({ schemas: z.record(z.string(), JsonSchemaShape).optional() }).optional(),
});

export type Security = 'apiKey' | 'adminToken' | 'none';

export interface Operation {
  method: string;
  /** OpenAPI path template, e.g. `/v1/tunnels/{id}`. */
  path: string;
  pathParams: string[];
  query: { name: string; schema: JsonSchema }[];
  body?: JsonSchema;
  security: Security;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** Every operation of an OpenAPI document, with `$ref`s resolved against its components. */
export function operationsOf(document: unknown): {
  operations: Operation[];
  resolve: (s: JsonSchema) => JsonSchema;
} {
  const doc = DocumentShape.parse(document);
  const components = doc.components?.schemas ?? {};
  const resolve = (schema: JsonSchema): JsonSchema => {
    const name = schema.$ref?.replace('#/components/schemas/', '');
    const target = name === undefined ? undefined : components[name];
    return target ? resolve(target) : schema;
  };
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, raw] of Object.entries(item)) {
      if (!METHODS.includes(method)) continue;
      const op = OperationShape.parse(raw);
      const schemes = (op.security ?? []).flatMap((s) => Object.keys(s));
      operations.push({
        method: method.toUpperCase(),
        path,
        pathParams: [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] ?? ''),
        query: (op.parameters ?? [])
          .filter((p) => p.in === 'query')
          .map((p) => ({ name: p.name, schema: p.schema ?? {} })),
        body: op.requestBody?.content['application/json']?.schema,
        security: schemes.includes('adminToken')
          ? 'adminToken'
          : schemes.includes('apiKey')
            ? 'apiKey'
            : 'none',
      });
    }
  }
  return { operations, resolve };
}

/** Symbols bound at send time: key material and ids that exist only then. */
export type Symbolic =
  | { symbol: 'deep'; index: number }
  | { symbol: 'badPublicKey'; index: number }
  | { symbol: 'badPrivateKey'; index: number }
  | { symbol: 'publicKey'; index: number }
  | { symbol: 'privateKey'; index: number }
  | { symbol: 'tunnelId'; whose: 'own' | 'other'; index: number };
export const isSymbolic = (v: unknown): v is Symbolic =>
  typeof v === 'object' &&
  v !== null &&
  'symbol' in v &&
  Object.keys(v).every((k) => ['symbol', 'index', 'whose'].includes(k));

const HUGE = 'A'.repeat(100 * 1024);
const JUST_UNDER_LIMIT = 'B'.repeat(60 * 1024);

/** Shell, systemd, cron and authorized_keys metacharacters, alone and in context. */
const INJECTIONS = [
  '$(id)',
  '`id`',
  ';id',
  '&&id',
  '|id',
  '"',
  "'",
  '\\',
  '%h',
  '%',
  '%%',
  '$HOME',
  '*',
  '?',
  '~',
  '#',
  ' x',
  '\nid',
  '\u0000',
  ',command="sh"',
];

/** Strings that have broken parsers somewhere: every host, user and name field gets them. */
export const HOSTILE_STRINGS: string[] = [
  'fe80::1%eth0',
  '::1%25lo',
  'fe80::1%',
  'fe80::1%.:-',
  '[::1]',
  '[fe80::1%eth0]',
  '::1',
  'db.internal:5432',
  '-oProxyCommand=id',
  '$(id)',
  '`id`',
  ';id',
  'a;b',
  'a && b',
  'a | b',
  '"',
  "'",
  '\\',
  '\\"',
  '%h',
  '%i',
  '%',
  '%%',
  '100%',
  '$HOME',
  '$$',
  '*',
  '?',
  '~',
  '#',
  ' ',
  '',
  'a b',
  'line\nbreak',
  'cr\rlf',
  'tab\tx',
  'nul\u0000byte',
  '\u0000',
  '\u007f',
  '\u202e', // RTL override
  '\u200f', // RTL mark
  '\u2028',
  '\ufeff',
  '\ud800', // lone surrogate
  'ｄｂ.internal', // fullwidth confusable
  'dаtabase.internal', // Cyrillic а
  'db\u0301.internal',
  '🔥',
  'ü.example.com',
  '5432',
  '22',
  '-1',
  '0',
  '1e3',
  '0x10',
  '1.5',
  'null',
  'true',
  '__proto__',
  'constructor',
  'tun_aaaaaaaaaaaaaaaa',
  '../../etc/passwd',
  '%2e%2e%2f',
  'permitopen="*:*"',
  'restrict,command="sh"',
  'ssh-ed25519 AAAA',
  HUGE,
  JUST_UNDER_LIMIT,
  'x'.repeat(101),
  'x'.repeat(255),
  'a.'.repeat(127),
];

function deep(depth: number, leaf: unknown, wrap: (v: unknown) => unknown): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = wrap(value);
  return value;
}

/** Values nested 2000 levels deep: arrays where objects go, and objects in objects. */
export const DEEP_VALUES = [deep(2000, 1, (v) => [v]), deep(2000, 1, (v) => ({ a: v }))];

/** Values of the wrong type or shape for any field. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      -1,
      0,
      1.5,
      -0,
      65536,
      70000,
      2 ** 31,
      2 ** 53 + 2,
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      Number.MIN_VALUE,
      null,
      true,
      false,
      [],
      {},
      [1, 2],
      ['a'],
      { type: 'reverse' },
    ),
  },
  // Bound at send time (see DEEP_VALUES): fast-check's reporter cannot print 2000 levels.
  { weight: 1, arbitrary: fc.constantFrom(0, 1).map((index): Symbolic => ({ symbol: 'deep', index })) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

/** Valid hosts that are still awkward to render. */
export const AWKWARD_HOSTS = [
  'db.internal',
  'db_1.internal',
  'db.internal.',
  '_pg._tcp.internal',
  '10.0.0.5',
  '127.0.0.1',
  '::1',
  'fd00:1:2::5',
  'FD00::ABCD',
  '::ffff:10.0.0.5',
  '::',
  `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
];

const validHost = fc.oneof(fc.constantFrom(...AWKWARD_HOSTS), fc.domain(), fc.ipV4(), fc.ipV6());
const validName = fc.oneof(
  fc.constantFrom(
    'warehouse',
    'n'.repeat(100),
    'ünïcödé 名前 🔥',
    '%h $(id) `id` ;',
    'it\'s "quoted"',
    '\u202eevil',
  ),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 100 }),
);

/** Hostile values aimed at one field, by its name; every field also gets `hostileValue`. */
const hostileHost = fc.oneof(
  fc.constantFrom(
    'fe80::1%eth0',
    '::1%25lo',
    'fe80::1%',
    '[::1]',
    '[fd00::1]:22',
    'db:5432',
    'db.internal/x',
    'ssh://db',
  ),
  // Zone ids in every form Node's isIP accepts: an interface name after any IPv6 address.
  fc.tuple(fc.ipV6(), fc.stringMatching(/^[a-zA-Z0-9.:-]{0,8}$/)).map(([ip, zone]) => `${ip}%${zone}`),
  fc.constantFrom('fe80::1%eth0', '::1%lo', 'fd00::5%25eth0'),
  fc
    .tuple(fc.constantFrom('db', '::1', '10.0.0.5'), fc.constantFrom(...INJECTIONS))
    .map(([host, injection]) => `${host}${injection}`),
  fc.constantFrom(...INJECTIONS),
);
const hostileByName: Record<string, fc.Arbitrary<unknown>> = {
  host: hostileHost,
  user: fc.constantFrom(...INJECTIONS, '-oProxyCommand=id', 'root@host', 'a'.repeat(65)),
  name: fc.constantFrom(
    '\ud800',
    'a\udc00',
    '',
    ' ',
    '\t',
    'n'.repeat(101),
    'a\nb',
    'a\u0000b',
    '\u202e',
    '%h',
  ),
  port: fc.constantFrom(0, -1, 65536, 22.5, '22', 1e21, null, [22]),
  publicKey: fc.nat({ max: 31 }).map((index): Symbolic => ({ symbol: 'badPublicKey', index })),
  privateKey: fc.nat({ max: 31 }).map((index): Symbolic => ({ symbol: 'badPrivateKey', index })),
  hostKeyFingerprint: fc.constantFrom('SHA256:', 'MD5:aa:bb', `SHA256:${'A'.repeat(44)}`, 'sha256:x'),
};

/** Valid values by field name, where the schema alone cannot say what valid means. */
function validByName(
  name: string,
  keys: { publicKeys: number; privateKeys: number },
): fc.Arbitrary<unknown> | undefined {
  switch (name) {
    case 'host':
      return validHost;
    case 'name':
      return validName;
    case 'user':
      return fc.oneof(
        fc.constantFrom('tunnel', 'ec2-user', 'a@b.c', '_x'),
        fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,20}$/),
      );
    case 'publicKey':
      return fc.nat({ max: keys.publicKeys - 1 }).map((index): Symbolic => ({ symbol: 'publicKey', index }));
    case 'privateKey':
      return fc
        .nat({ max: keys.privateKeys - 1 })
        .map((index): Symbolic => ({ symbol: 'privateKey', index }));
    // RSA-4096 generation costs seconds: the fuzzer asks for the fast types (a table test covers rsa).
    case 'keyType':
      return fc.constantFrom('ed25519', 'ecdsa');
    case 'password':
    case 'passphrase':
      return fc.string({ minLength: 1, maxLength: 40 });
    default:
      return undefined;
  }
}

export interface BodyContext {
  resolve: (s: JsonSchema) => JsonSchema;
  publicKeys: number;
  privateKeys: number;
}

type Path = (string | number)[];

/** Where a value can be mutated: the root, every property and array item, with the field name. */
function pathsOf(value: unknown, path: Path = []): { path: Path; name: string }[] {
  const name = String(path.at(-1) ?? '');
  const here = [{ path, name }];
  if (isSymbolic(value)) return here;
  if (Array.isArray(value)) return [...here, ...value.flatMap((v, i) => pathsOf(v, [...path, i]))];
  if (value && typeof value === 'object') {
    return [...here, ...Object.entries(value).flatMap(([k, v]) => pathsOf(v, [...path, k]))];
  }
  return here;
}

function setAt(value: unknown, path: Path, replacement: unknown): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return replacement;
  if (Array.isArray(value)) return value.map((v, i) => (i === head ? setAt(v, rest, replacement) : v));
  if (value && typeof value === 'object') {
    return { ...value, [head]: setAt((value as Record<string, unknown>)[head], rest, replacement) };
  }
  return value;
}

function dropAt(value: unknown, path: Path): unknown {
  const parent = path.slice(0, -1);
  const key = path.at(-1);
  const drop = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).filter(([k]) => k !== key))
      : v;
  if (parent.length === 0) return drop(value);
  let target: unknown = value;
  for (const step of parent) target = (target as Record<string | number, unknown>)?.[step];
  return setAt(value, parent, drop(target));
}

const hostileFor = (name: string) =>
  hostileByName[name]
    ? fc.oneof({ weight: 3, arbitrary: hostileByName[name] }, { weight: 1, arbitrary: hostileValue })
    : hostileValue;
const UNKNOWN_KEYS = [
  'extra',
  'Type',
  'type ',
  '__proto__',
  'constructor',
  '',
  'id',
  'workspaceId',
  'port\u0000',
];

/**
 * A value for `schema` (the field `name` of its parent): a valid one (so that creates succeed and
 * reach the renderers), then most of the time exactly one mutation at a random node: a hostile
 * value aimed at that field, a dropped field, or an unknown one.
 */
export function valueArb(schema: JsonSchema, name: string, ctx: BodyContext): fc.Arbitrary<unknown> {
  const valid = validArb(ctx.resolve(schema), name, ctx);
  const mutated = valid.chain((value) => {
    // Fields with aimed hostile values (hosts, users, keys...) are mutated three times as often.
    const paths = pathsOf(value, []).flatMap((p) => (hostileByName[p.name] ? [p, p, p] : [p]));
    return fc.nat({ max: paths.length - 1 }).chain((i) => {
      const { path, name: field } = paths[i] ?? { path: [], name };
      return fc.oneof(
        { weight: 8, arbitrary: hostileFor(field || name).map((h) => setAt(value, path, h)) },
        { weight: 1, arbitrary: fc.constant(dropAt(value, path)) },
        {
          weight: 1,
          arbitrary: fc
            .tuple(fc.constantFrom(...UNKNOWN_KEYS), hostileValue)
            .map(([key, v]) => setAt(value, [...path.slice(0, -1), key], v)),
        },
      );
    });
  });
  return fc.oneof({ weight: 2, arbitrary: valid }, { weight: 5, arbitrary: mutated });
}

function validArb(s: JsonSchema, name: string, ctx: BodyContext): fc.Arbitrary<unknown> {
  const variants = s.oneOf ?? s.anyOf;
  if (variants) return fc.oneof(...variants.map((v) => validArb(ctx.resolve(v), name, ctx)));
  if (s.enum && name !== 'keyType') return fc.constantFrom(...s.enum);
  const byName = s.type === 'object' || s.properties ? undefined : validByName(name, ctx);
  if (byName) return byName;
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
  switch (type) {
    case 'object': {
      const props = Object.entries(s.properties ?? {});
      const required = s.required ?? [];
      return fc.record(
        Object.fromEntries(props.map(([key, child]) => [key, validArb(ctx.resolve(child), key, ctx)])),
        { requiredKeys: required.filter((k) => props.some(([key]) => key === k)) },
      );
    }
    case 'integer':
    case 'number':
      return fc.integer({ min: s.minimum ?? -1000, max: s.maximum ?? 100_000 });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(s.items ? validArb(ctx.resolve(s.items), name, ctx) : fc.jsonValue(), { maxLength: 3 });
    case 'string':
      if (s.pattern) return fc.stringMatching(new RegExp(s.pattern));
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 40) });
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Bodies that are not a JSON rendering of a value: broken, odd or oversized text, and bytes. */
export const RAW_BODIES: (string | Uint8Array)[] = [
  '',
  ' ',
  'null',
  '[]',
  '"string"',
  '42',
  '{',
  '{"type":',
  '{"type":"reverse",}',
  "{'type':'reverse'}",
  '{"name":1e400}',
  '1e400',
  '{"type":"reverse","type":"standard","name":"x","service":{"host":"db","port":1}}',
  '{"__proto__":{"type":"reverse"},"name":"x"}',
  '\ufeff{"type":"reverse","name":"bom","service":{"host":"db","port":5432}}',
  '{"type":"reverse","name":"nul\u0000","service":{"host":"db","port":5432}}',
  '{"type":"reverse","name":"x","service":{"host":"fe80::1%eth0","port":5432}}',
  '{"type":"reverse","name":"x","service":{"host":"db","port":5432.0}}',
  '{"type":"reverse","name":"x","service":{"host":"db","port":5e3}}',
  '{"type":"reverse","name":"x","service":{"host":"db","port":123456789012345678901234567890}}',
  '['.repeat(30_000) + ']'.repeat(30_000),
  `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`,
  `{"type":"reverse","name":"${'n'.repeat(100 * 1024)}"}`,
  `"${'s'.repeat(63 * 1024)}"`,
  new Uint8Array([0xff, 0xfe, 0x7b, 0x00, 0x7d]),
  new Uint8Array([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]),
];

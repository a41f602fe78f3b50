/**
 * zod schemas for every request and response of the public contract (../shared/CONTRACT.md).
 * Types come from them; the OpenAPI document is generated from them.
 */
import { z } from '@hono/zod-openapi';
import { ValidationError } from './errors';
import { HOST_TOO_LONG, hostProblem, MAX_HOST_LENGTH } from './hosts';
import { API_KEY_ID_PATTERN, WORKSPACE_ID_PATTERN } from './ids';
import { parsePublicKey } from './keys';

export const HostSchema = z
  .string()
  .max(MAX_HOST_LENGTH, HOST_TOO_LONG)
  .superRefine((host, ctx) => {
    const problem = host.length > MAX_HOST_LENGTH ? undefined : hostProblem(host);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .openapi({ example: 'db.internal.example.com' });

// A UTF-16 surrogate without its pair: JSON can carry one (`"\ud800"`), UTF-8 (DynamoDB, files,
// the customer's terminal) cannot.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A free-text string: valid Unicode, so that it can be stored and shown as UTF-8. */
const text = () =>
  z.string().refine((s) => !LONE_SURROGATE.test(s), {
    message: 'must be valid Unicode text (it has an unpaired surrogate code unit)',
  });

export const PortSchema = z
  .number({ error: 'must be a number' })
  .int('must be a whole number')
  .min(1, 'must be between 1 and 65535')
  .max(65535, 'must be between 1 and 65535');

export const NameSchema = text()
  .max(100, 'must be at most 100 characters')
  .refine((s) => s.trim().length > 0, { message: 'must not be empty or blank' })
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), { message: 'must not contain control characters' })
  .openapi({ example: 'analytics-db' });

export const SshUserSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(64, 'must be at most 64 characters')
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.@-]*$/, 'may contain only letters, digits, and _ . @ -');

export const FingerprintSchema = z
  .string()
  .regex(
    /^SHA256:[A-Za-z0-9+/]{43}$/,
    'must be an OpenSSH SHA256 fingerprint, e.g. SHA256:abc... (43 chars)',
  );

/**
 * A customer's OpenSSH public key line, checked in full here (type, data, strength), so that a
 * body with a bad key and another bad field answers both at once.
 */
const PublicKeyLine = text()
  .min(1, 'must not be empty')
  .max(16_384, 'is too long for a public key')
  .superRefine((line, ctx) => {
    if (line.length === 0 || line.length > 16_384) return;
    try {
      parsePublicKey(line, 'publicKey');
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      for (const issue of err.issues) ctx.addIssue({ code: 'custom', message: issue.message });
    }
  });

export const ServiceSchema = z
  .strictObject({ host: HostSchema, port: PortSchema })
  .openapi('Service', { description: 'The private service (e.g. a database) the tunnel reaches.' });

export const SshTargetInputSchema = z.strictObject({
  host: HostSchema,
  port: PortSchema.default(22),
  user: SshUserSchema,
  hostKeyFingerprint: FingerprintSchema.optional(),
});

export const KeyTypeSchema = z.enum(['ed25519', 'rsa', 'ecdsa']);

export const AuthInputSchema = z
  .discriminatedUnion('method', [
    z.strictObject({ method: z.literal('generated'), keyType: KeyTypeSchema.default('ed25519') }),
    z.strictObject({
      method: z.literal('private_key'),
      privateKey: text().min(1, 'must not be empty').max(32_768, 'is too long for a private key'),
      passphrase: text().max(1024, 'is too long').optional(),
    }),
    z.strictObject({
      method: z.literal('password'),
      password: text().min(1, 'must not be empty').max(1024, 'is too long'),
    }),
  ])
  .openapi('Auth');

export const CreateStandardTunnelSchema = z.strictObject({
  type: z.literal('standard'),
  name: NameSchema,
  ssh: SshTargetInputSchema,
  service: ServiceSchema,
  auth: AuthInputSchema.optional(),
});

/** Reverse tunnels: how many connectors (customer hosts) should be live at once (connectors.ts). */
export const ReverseOptionsSchema = z.strictObject({
  connectors: z
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be between 1 and 4')
    .max(4, 'must be between 1 and 4')
    .optional(),
});

export const CreateReverseTunnelSchema = z.strictObject({
  type: z.literal('reverse'),
  name: NameSchema,
  service: ServiceSchema,
  publicKey: PublicKeyLine.optional(),
  reverse: ReverseOptionsSchema.optional(),
});

export const CreateTunnelSchema = z
  .discriminatedUnion('type', [CreateStandardTunnelSchema, CreateReverseTunnelSchema])
  .openapi('CreateTunnel');

/** The longest maintenance window (`alerts.mutedUntil`): a forgotten mute ends within a year. */
export const MAX_MUTE_MS = 366 * 24 * 60 * 60 * 1000;

/** PATCH merges: fields left out keep their value. */
export const PatchTunnelSchema = z
  .strictObject({
    name: NameSchema.optional(),
    enabled: z.boolean({ error: 'must be true or false' }).optional(),
    service: z.strictObject({ host: HostSchema.optional(), port: PortSchema.optional() }).optional(),
    ssh: z
      .strictObject({
        host: HostSchema.optional(),
        port: PortSchema.optional(),
        user: SshUserSchema.optional(),
        hostKeyFingerprint: FingerprintSchema.optional(),
      })
      .optional(),
    reverse: ReverseOptionsSchema.optional(),
    alerts: z
      .strictObject({
        /**
         * Maintenance: no `tunnel.down` is sent before this time (one after it if the tunnel is still
         * down); events are recorded as always. `null` ends the window now.
         */
        mutedUntil: z.iso
          .datetime({ offset: true, error: 'must be an ISO 8601 time, e.g. 2026-01-03T04:00:00Z' })
          .refine((v) => Date.parse(v) - Date.now() <= MAX_MUTE_MS, {
            message: 'must be at most 366 days from now',
          })
          .nullable()
          .optional(),
      })
      .optional(),
  })
  .refine((b) => Object.keys(b).length > 0, {
    message: 'give at least one of name, enabled, service, ssh, reverse, alerts',
  })
  .openapi('PatchTunnel');

export const CreateConnectorSchema = z
  .strictObject({ publicKey: PublicKeyLine.optional() })
  .openapi('CreateConnector');

/** A connector of a reverse tunnel: one customer host, its key and its own commands. */
export const ConnectorSchema = z
  .object({
    id: z.string(),
    publicKey: z.string(),
    publicKeyFingerprint: z.string(),
    createdAt: z.string(),
    /** Whether a session of this connector carries the tunnel now. */
    live: z.boolean(),
    commands: z.object({
      ssh: z.string(),
      autossh: z.string(),
      systemd: z.string(),
      crontab: z.string(),
      plink: z.string().optional(),
    }),
    /** Only in the create response of a generated key: returned once, never stored. */
    privateKey: z.string().optional(),
  })
  .openapi('Connector');

export type Connector = z.infer<typeof ConnectorSchema>;

export const ConnectorListSchema = z
  .object({ items: z.array(ConnectorSchema), expected: z.number().int() })
  .openapi('ConnectorList');

export const RotateKeySchema = z.strictObject({ publicKey: PublicKeyLine.optional() }).openapi('RotateKey');

export const CreateWorkspaceSchema = z.strictObject({ name: NameSchema }).openapi('CreateWorkspace');

export const WorkspaceCreatedSchema = z
  .object({ id: z.string(), name: z.string(), apiKey: z.string() })
  .openapi('WorkspaceCreated');

/** An API key as listed: never the key itself, only what tells keys apart. */
export const ApiKeySchema = z
  .object({
    id: z.string(),
    /** The key's first characters (`tk_` and 7 more), as a password manager would show them. */
    prefix: z.string().nullable(),
    createdAt: z.string(),
    /** When it last authenticated a request, to the nearest few minutes; absent: never since listed. */
    lastUsedAt: z.string().optional(),
    /** Whether this is the key the request was made with. */
    current: z.boolean(),
  })
  .openapi('ApiKey');
export type ApiKey = z.infer<typeof ApiKeySchema>;

export const ApiKeyListSchema = z.object({ items: z.array(ApiKeySchema) }).openapi('ApiKeyList');

export const ApiKeyCreatedSchema = z
  .object({
    id: z.string(),
    prefix: z.string(),
    createdAt: z.string(),
    workspaceId: z.string(),
    /** The key itself: shown here once, never stored (only its hash). */
    apiKey: z.string(),
  })
  .openapi('ApiKeyCreated');

export const ApiKeyIdParamSchema = z.object({
  id: z
    .string()
    .regex(API_KEY_ID_PATTERN, 'is not an API key id')
    .openapi({ param: { name: 'id', in: 'path' } }),
});

export const WorkspaceIdParamSchema = z.object({
  id: z
    .string()
    .regex(WORKSPACE_ID_PATTERN, 'is not a workspace id')
    .openapi({ param: { name: 'id', in: 'path' } }),
});

export const WorkspaceSchema = z
  .object({ id: z.string(), name: z.string(), createdAt: z.string() })
  .openapi('Workspace');

export const WorkspaceListSchema = z
  .object({ items: z.array(WorkspaceSchema), nextCursor: z.string().optional() })
  .openapi('WorkspaceList');

export const PageQuerySchema = z.object({
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be between 1 and 100')
    .max(100, 'must be between 1 and 100')
    .default(50),
  cursor: z.string().max(2048, 'is too long').optional(),
});

export const StatusErrorCodeSchema = z.enum([
  'customer_not_connected',
  'customer_timeout',
  'ssh_dns_failed',
  'ssh_unreachable',
  'ssh_refused',
  'ssh_host_forbidden',
  'host_key_mismatch',
  'auth_failed',
  'forward_denied',
  'service_unreachable',
  'connection_lost',
  'worker_lost',
]);
export type StatusErrorCode = z.infer<typeof StatusErrorCodeSchema>;

export const TunnelStateNameSchema = z.enum(['pending', 'up', 'down', 'disabled']);
export type TunnelStateName = z.infer<typeof TunnelStateNameSchema>;

export const StatusErrorSchema = z.object({
  code: StatusErrorCodeSchema,
  message: z.string(),
  hint: z.string(),
});
export type StatusError = z.infer<typeof StatusErrorSchema>;

/**
 * Status warnings: what is worth knowing while the state itself holds (CONTRACT.md, Extensions),
 * plus `status_unreadable`: a stored item of the tunnel's status cannot be read.
 */
export const StatusWarningCodeSchema = z.enum([
  'session_contention',
  'login_refused',
  'command_outdated',
  'service_unreachable',
  'status_unreadable',
  'connectors_missing',
]);

export const StatusWarningSchema = z
  .object({ code: StatusWarningCodeSchema, message: z.string(), hint: z.string(), since: z.string() })
  .openapi('StatusWarning');
export type StatusWarning = z.infer<typeof StatusWarningSchema>;

const uptimeFraction = z.number().min(0).max(1).nullable().openapi({
  description: 'up time / counted time; null when none of the window counted (pending or disabled)',
});

/** `status.uptime` (CONTRACT.md, Extensions): docs/status.md#uptime says how it is counted. */
export const UptimeSchema = z
  .object({ '24h': uptimeFraction, '7d': uptimeFraction, '30d': uptimeFraction })
  .openapi('Uptime', {
    description:
      'Fraction of each window (ending now) the tunnel was up, out of the time it was expected up: pending and disabled time is not counted.',
  });

/** What went through the tunnel on the gateway that serves it, since it began serving it. */
export const TrafficSchema = z
  .object({
    since: z.string(),
    connections: z.number().int().min(0),
    openConnections: z.number().int().min(0),
    bytesToService: z.number().int().min(0),
    bytesFromService: z.number().int().min(0),
    reportedAt: z.string(),
  })
  .openapi('Traffic', {
    description:
      "Connections and bytes through the tunnel since `since` (when the gateway serving it began to), as of that gateway's latest heartbeat (`reportedAt`).",
  });
export type Traffic = z.infer<typeof TrafficSchema>;

export const StatusSchema = z
  .object({
    state: TunnelStateNameSchema,
    since: z.string(),
    lastSeenAt: z.string().optional(),
    error: StatusErrorSchema.optional(),
    /** Standard tunnels while up: fingerprint of the key the session authenticated with. */
    keyFingerprint: z.string().optional(),
    warnings: z.array(StatusWarningSchema).optional(),
    /** Reverse tunnels with connectors: how many are live, of how many expected. */
    connectors: z.object({ live: z.number().int(), expected: z.number().int() }).optional(),
    uptime: UptimeSchema.optional(),
    /** While up: what the serving gateway counted (its heartbeat carries it). */
    traffic: TrafficSchema.optional(),
  })
  .openapi('Status');
export type Status = z.infer<typeof StatusSchema>;

export const ConnectSchema = z.object({ host: z.string(), port: z.number().int() }).nullable();

export const TunnelSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    type: z.enum(['standard', 'reverse']),
    enabled: z.boolean(),
    createdAt: z.string(),
    updatedAt: z.string(),
    service: z.object({ host: z.string(), port: z.number().int() }),
    ssh: z
      .object({
        host: z.string(),
        port: z.number().int(),
        user: z.string(),
        hostKeyFingerprint: z.string().optional(),
      })
      .optional(),
    publicKey: z.string(),
    publicKeyFingerprint: z.string(),
    authorizedKeysLine: z.string().optional(),
    reverse: z
      .object({
        sshHost: z.string(),
        sshPort: z.number().int(),
        sshUser: z.string(),
        remotePort: z.number().int(),
        knownHostsLine: z.string(),
        commands: z.object({
          ssh: z.string(),
          autossh: z.string(),
          systemd: z.string(),
          crontab: z.string(),
          /** PuTTY's plink for Windows customers (an extension of the contract's four). */
          plink: z.string().optional(),
        }),
        /** How many connectors should be live at once (connectors.ts). */
        connectors: z.number().int().optional(),
      })
      .optional(),
    connect: ConnectSchema,
    status: StatusSchema,
    /** Per-tunnel alerting: `mutedUntil` while a maintenance window is set. */
    alerts: z.object({ mutedUntil: z.string().optional() }).optional(),
    privateKey: z.string().optional(),
  })
  .openapi('Tunnel');
export type Tunnel = z.infer<typeof TunnelSchema>;

export const TunnelListSchema = z
  .object({
    items: z.array(TunnelSchema),
    nextCursor: z.string().optional(),
    /**
     * Tunnels of this page whose stored configuration cannot be read (the others are all in
     * `items`); `GET /v1/tunnels/{id}` says the same, and `DELETE` still removes them.
     */
    unreadable: z.array(z.object({ id: z.string(), message: z.string() })).optional(),
  })
  .openapi('TunnelList');

export const ListQuerySchema = PageQuerySchema.extend({ state: TunnelStateNameSchema.optional() });

/** Why a tunnel went down when it was not a failure: `restart`, a gateway's clean shutdown (deploy, restart). */
export const DownCauseSchema = z.enum(['restart']);
export type DownCause = z.infer<typeof DownCauseSchema>;

export const EventSchema = z
  .object({
    at: z.string(),
    from: TunnelStateNameSchema,
    to: TunnelStateNameSchema,
    error: StatusErrorSchema.optional(),
    /** On a `down`: it was a restart or handover of the gateway holding the tunnel, not a failure. */
    cause: DownCauseSchema.optional(),
    /** On an `up` after a `down`: how long the tunnel was unavailable. */
    downMs: z.number().int().min(0).optional(),
  })
  .openapi('Event');
export type TunnelEvent = z.infer<typeof EventSchema>;
export const EventListSchema = z.object({ items: z.array(EventSchema) }).openapi('EventList');

/** What on-call receives (SNS message, webhook body, log line): one per incident edge. */
export const AlertSchema = z
  .object({
    type: z.enum(['tunnel.down', 'tunnel.up']),
    tunnel: z.object({ id: z.string(), name: z.string(), workspaceId: z.string() }),
    status: StatusSchema,
    at: z.string(),
  })
  .openapi('Alert');
export type Alert = z.infer<typeof AlertSchema>;
export type AlertType = Alert['type'];

/** One step of `POST /v1/tunnels/{id}/test`; `code` (a status error code) and `hint` when it failed. */
export const TestCheckSchema = z
  .object({
    name: z.string(),
    ok: z.boolean(),
    message: z.string(),
    code: StatusErrorCodeSchema.optional(),
    hint: z.string().optional(),
    ms: z.number(),
  })
  .openapi('TestCheck');
export type TestCheck = z.infer<typeof TestCheckSchema>;

export const TestResultSchema = z
  .object({ ok: z.boolean(), checks: z.array(TestCheckSchema) })
  .openapi('TestResult');
export type TestResult = z.infer<typeof TestResultSchema>;

export const ErrorBodySchema = z
  .object({
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  })
  .openapi('Error');

export const TunnelIdParamSchema = z.object({
  id: z.string().openapi({ param: { name: 'id', in: 'path' }, example: 'tun_abcdefghijklmnop' }),
});

export const ConnectorIdParamSchema = TunnelIdParamSchema.extend({
  connectorId: z.string().openapi({ param: { name: 'connectorId', in: 'path' }, example: 'cn_abcdefghijkl' }),
});

/**
 * `POST /v1/tunnels/{id}/reconnect` (202): `reconnecting` (the worker serving it dropped the
 * backoff and connects now), `connecting` (an attempt is under way), `up` (nothing to do), or
 * `unassigned` (no worker serves it right now; the one that claims it connects at once).
 */
export const ReconnectAcceptedSchema = z
  .object({
    outcome: z.enum(['reconnecting', 'connecting', 'up', 'unassigned']),
    message: z.string(),
  })
  .openapi('ReconnectAccepted');
export type ReconnectAccepted = z.infer<typeof ReconnectAcceptedSchema>;

/** A host key as customers check it (`GET /v1/info`). */
export const HostKeySchema = z
  .object({
    type: z.string().openapi({ example: 'ssh-ed25519' }),
    /** As `ssh-keygen -l` prints it, and as `ssh` shows it on first connection. */
    fingerprint: z.string().openapi({ example: 'SHA256:mVPwvHNePGNhtHPSeS9DsNUrG1uaJrBAv3ZP9WUYyxg' }),
    /** The line to append to `~/.ssh/known_hosts`, the same as each reverse tunnel's `reverse.knownHostsLine`. */
    knownHostsLine: z
      .string()
      .openapi({ example: '[tunnels.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...' }),
  })
  .openapi('HostKey');

/** A token bucket: a steady rate, and the burst above it. */
export const RequestRateSchema = z
  .object({ requestsPerSecond: z.number(), burst: z.number().int() })
  .openapi('RequestRate');

/**
 * `GET /v1/info`: what the service offers and promises, the same for every caller, before any
 * tunnel exists: where reverse tunnels connect and which host key to expect there, the addresses
 * standard tunnels connect from, the SSH algorithms the endpoint offers, and the limits a workspace meets.
 */
export const ServiceInfoSchema = z
  .object({
    sshEndpoint: z
      .object({
        host: z.string().openapi({ example: 'tunnels.example.com' }),
        port: z.number().int().openapi({ example: 22 }),
        hostKeys: z.array(HostKeySchema),
      })
      .openapi({
        description: "The reverse-tunnel SSH endpoint customers' `ssh -R` connects to, and its host keys",
      }),
    egressIps: z.array(z.string()).openapi({
      description:
        "The addresses standard tunnels (and tunnel tests) connect to bastions from: allow these to the bastion's SSH port. Empty: this deployment promises no fixed address.",
      example: ['203.0.113.10', '203.0.113.11'],
    }),
    algorithms: z
      .object({
        kex: z.array(z.string()),
        cipher: z.array(z.string()),
        mac: z.array(z.string()),
        hostKey: z.array(z.string()),
      })
      .openapi({
        description:
          "What the SSH endpoint offers, in its order (the client's preference wins). `cipher` is the whole set: " +
          'clients known to have AES-GCM (OpenSSH ≥ 6.2, PuTTY ≥ 0.76) are offered only the AES-GCM ciphers; ' +
          'MACs are used with the CTR ciphers only.',
      }),
    limits: z
      .object({
        /** More is 409 `quota_exceeded`. */
        tunnelsPerWorkspace: z.number().int(),
        /** More is 409 `quota_exceeded`. */
        apiKeysPerWorkspace: z.number().int(),
        /** Logged-in ssh sessions of one reverse tunnel at once on a gateway; one more is refused at login. */
        sessionsPerTunnel: z.number().int(),
        /** Connections carried through one tunnel at once; more are refused. */
        connectionsPerTunnel: z.number().int(),
        /** A connection through a tunnel with no byte either way for this long is closed. */
        idleConnectionTimeoutMs: z.number().int(),
        /** From TCP connect to logged in on the SSH endpoint; a slower login is dropped. */
        sshHandshakeTimeoutMs: z.number().int(),
        /** Largest request body; more is 413 `payload_too_large`. */
        requestBodyBytes: z.number().int(),
        /** Requests with one workspace's keys, per API instance; more are 429 `rate_limited`. */
        requestsPerWorkspace: RequestRateSchema,
        /** Requests without valid credentials, per source address and API instance; more are 429. */
        unauthenticatedRequestsPerSource: RequestRateSchema,
      })
      .openapi({ description: 'The quotas and limits a workspace meets, as this deployment enforces them' }),
  })
  .openapi('ServiceInfo');
export type ServiceInfo = z.infer<typeof ServiceInfoSchema>;

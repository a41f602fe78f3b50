/**
 * Configuration from the environment, parsed once per runtime by the entry points. No other module
 * reads `process.env`: they receive the parts of `Config` they need.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { formatConnectHosts, parseConnectHosts, uncoveredPorts } from './connect-hosts';
import { ConfigError } from './errors';
import { hostProblem } from './hosts';

const port = z.coerce.number().int().min(0).max(65535);
const durationMs = z.coerce.number().int().min(1);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const portRange = z
  .string()
  .regex(/^\d{1,5}-\d{1,5}$/, 'expected FROM-TO, e.g. 20000-29999')
  .transform((v, ctx) => {
    const [from, to] = v.split('-').map(Number) as [number, number];
    if (from < 1 || to > 65535 || from > to) {
      ctx.addIssue({ code: 'custom', message: 'expected 1 <= FROM <= TO <= 65535' });
      return z.NEVER;
    }
    return { from, to };
  });

/** sshd's MaxStartups: `start:rate:full` (drop rate% of unauthenticated connections from start, all at full), or `full`. */
const maxStartups = z
  .string()
  .regex(/^\d{1,6}(:\d{1,3}:\d{1,6})?$/, 'expected START:RATE:FULL (e.g. 100:30:1000) or FULL')
  .transform((v, ctx) => {
    // A lone number is `full` with nothing dropped at random before it, as in sshd.
    const [start = 0, rate = 100, full = start] = v.split(':').map(Number);
    if (full < 1 || start > full || rate > 100) {
      ctx.addIssue({ code: 'custom', message: 'expected 1 <= FULL, START <= FULL and RATE <= 100' });
      return z.NEVER;
    }
    return { start, rate, full };
  });

/** An Elastic Load Balancing ARN of the given resource pattern. */
const ELB_ARN = (resource: string) =>
  new RegExp(`^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\\d{12}:${resource}$`);

/** Comma-separated IP addresses (IPv4 or IPv6, no ranges); empty entries are ignored. */
const ipList = z.string().transform((v, ctx) => {
  const entries = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = entries.filter((entry) => isIP(entry) === 0);
  if (bad.length > 0) {
    // The entries are our own configuration, not a secret: naming them says what to fix.
    const names = bad.map((entry) => JSON.stringify(entry.slice(0, 64))).join(', ');
    ctx.addIssue({
      code: 'custom',
      message: `not an IP address: ${names} (expected e.g. 203.0.113.10,2001:db8::1)`,
    });
    return z.NEVER;
  }
  return entries;
});

const envSchema = z.object({
  PORT: port.default(8787),
  HOST: z.string().min(1).default('127.0.0.1'),
  SSH_PORT: port.default(2222),
  /** Address the SSH endpoint binds; defaults to `HOST`. */
  SSH_HOST: z.string().min(1).optional(),
  /** From TCP accept to authenticated on the SSH endpoint. */
  SSH_HANDSHAKE_TIMEOUT_MS: durationMs.default(20_000),
  /** Concurrent connections through one tunnel. */
  MAX_CHANNELS_PER_TUNNEL: z.coerce.number().int().min(1).max(100_000).default(256),
  /** Tunnels one workspace may have (CONTRACT.md, Extensions): one more is 409 `quota_exceeded`. */
  MAX_TUNNELS_PER_WORKSPACE: z.coerce.number().int().min(1).max(1_000_000).default(100),
  /**
   * A connection through a tunnel on which neither side sent a byte for this long is closed: a
   * departed client and a stuck service must not hold sockets (and a channel) forever.
   */
  DATA_IDLE_TIMEOUT_MS: durationMs.default(3_600_000),
  /** How often a worker's standard pool looks for new, changed or orphaned standard tunnels. */
  POOL_POLL_INTERVAL_MS: durationMs.default(5_000),
  /** Timeout of one SSH connection attempt to a bastion, TCP connect to authenticated. */
  BASTION_READY_TIMEOUT_MS: durationMs.default(20_000),
  /** First and largest delay between reconnect attempts to a bastion (exponential, jittered). */
  RECONNECT_INITIAL_MS: durationMs.default(1_000),
  RECONNECT_MAX_MS: durationMs.default(60_000),
  /** Port of the gateway's internal control endpoint (tunnel tests), on the worker address; 0 = any free port. */
  CONTROL_PORT: port.default(0),
  /** Port of the gateway's health endpoint in AWS (the NLB checks it, apart from the SSH port). */
  HEALTH_PORT: port.default(8080),
  /** Set by ECS on Fargate tasks: where the gateway learns its own VPC address. */
  ECS_CONTAINER_METADATA_URI_V4: z.url().optional(),
  /** Secrets Manager endpoint override (tests, LocalStack-style setups). */
  SECRETS_MANAGER_ENDPOINT: z.url().optional(),
  /** This worker's address as the platform's workloads reach it (`connect.host`); defaults to `TUNNEL_BIND_HOST`. */
  WORKER_ADDRESS: z.string().min(1).optional(),
  DATA_DIR: z.string().min(1).default('.data'),
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  // What an `Authorization: Bearer` token may hold (lambda/api/auth.ts): any other key could never authenticate.
  BOOTSTRAP_API_KEY: z
    .string()
    .min(16, 'must be at least 16 characters')
    .max(512, 'must be at most 512 characters')
    .regex(/^[A-Za-z0-9._~+/=-]+$/, 'may hold only letters, digits and . _ ~ + / = -')
    .optional(),
  /** Written into every customer command and known_hosts line: a host those can carry. */
  PUBLIC_SSH_HOST: z
    .string()
    .default('localhost')
    .superRefine((host, ctx) => {
      const problem = hostProblem(host);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  /** Port customers dial; in AWS the NLB's 22, locally `SSH_PORT`. */
  PUBLIC_SSH_PORT: port.optional(),
  TUNNEL_BIND_HOST: z.string().min(1).default('127.0.0.1'),
  TUNNEL_PORT_RANGE: portRange.default({ from: 20000, to: 29999 }),
  HEARTBEAT_INTERVAL_MS: durationMs.default(15_000),
  SWEEP_INTERVAL_MS: durationMs.default(60_000),
  DOWN_GRACE_MS: z.coerce.number().int().min(0).default(120_000),
  SSH_KEEPALIVE_INTERVAL_MS: durationMs.default(15_000),
  ALERT_WEBHOOK_URL: z.url().optional(),
  /** HMAC-SHA256 key of the webhook signature; `npm start` generates one in `DATA_DIR` when unset. */
  ALERT_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  /** SNS topic on-call subscribes to; the sweeper publishes every alert there when set. */
  ALERT_TOPIC_ARN: z
    .string()
    .regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/, 'must be an SNS topic ARN')
    .optional(),
  ALLOW_PRIVATE_SSH_HOSTS: bool.optional(),
  DYNAMODB_ENDPOINT: z.url().optional(),
  DYNAMODB_LOCAL_PORT: port.optional(),
  TABLE_NAME: z.string().min(3).default('tunnelkeeper'),
  SECRET_PREFIX: z.string().min(1).default('tunnelkeeper'),
  AWS_REGION: z.string().min(1).default('us-east-1'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /** SSH endpoint: from accept to the client's identification string (`SSH-2.0-...`). */
  SSH_BANNER_TIMEOUT_MS: durationMs.default(10_000),
  /** SSH endpoint: random early drop of unauthenticated connections from penalized or busy sources. */
  SSH_MAX_STARTUPS: maxStartups.default({ start: 100, rate: 30, full: 1000 }),
  /** SSH endpoint: unauthenticated connections one source (IPv4 address, IPv6 /64) may hold at once. */
  SSH_PER_SOURCE_MAX_STARTUPS: z.coerce.number().int().min(1).max(100_000).default(64),
  /** Logged-in sessions of one tunnel at once on a gateway (CONTRACT.md, Extensions). */
  MAX_SESSIONS_PER_TUNNEL: z.coerce.number().int().min(1).max(10_000).default(4),
  /** How long a tunnel record the gateway read still lets its customer log in while storage is down (0: never). */
  SSH_LOGIN_CACHE_TTL_MS: z.coerce.number().int().min(0).default(21_600_000),
  /** Tunnel records the gateway keeps for that, least recently read dropped first. */
  SSH_LOGIN_CACHE_MAX_TUNNELS: z.coerce.number().int().min(0).max(1_000_000).default(10_000),
  /**
   * Worker processes of the key crypto pool (key derivation, RSA generation, large-RSA signatures);
   * default one less than the CPUs (at least 1). 0 runs them on the event loop: only where no
   * process can be had.
   */
  KEY_CRYPTO_WORKERS: z.coerce.number().int().min(0).max(64).optional(),
  /** Key crypto tasks that may wait for a worker; beyond, requests get 503 with Retry-After. */
  KEY_CRYPTO_MAX_QUEUE: z.coerce.number().int().min(0).max(10_000).default(32),
  /** From submission to result of one key crypto task; past it, 503 (the API) or a retry (the gateway). */
  KEY_CRYPTO_TIMEOUT_MS: durationMs.default(60_000),
  /**
   * After a standard tunnel's key rotation, the old bastion session keeps the connections it
   * carries (new ones use the new session) until they end, at most this long: a day by default, so
   * a nightly job finishes and a days-long replication stream is cut once, a day after the
   * rotation. At most 2^31-1 ms (~24.8 days, Node's longest timer).
   */
  ROTATION_DRAIN_MAX_MS: z.coerce.number().int().min(1).max(2_147_483_647).default(86_400_000),
  /**
   * The addresses standard tunnels reach customers' bastions from, which customers allowlist
   * (`GET /v1/info`, `egressIps`). In AWS the stack sets the NAT gateways' Elastic IPs; locally,
   * whatever this machine's outbound traffic leaves from, if it is fixed. Unset: none is promised.
   */
  EGRESS_IPS: ipList.default([]),
  /**
   * A gateway's SIGTERM: how long reverse sessions another gateway can stand in for keep finishing
   * the connections they carry (new ones go to the others) before they are closed and their
   * customers reconnect elsewhere. Inside the 10 s a stop may take, with the last writes after it.
   */
  SHUTDOWN_DRAIN_MS: z.coerce.number().int().min(0).max(5_000).default(3_000),
  /** PagerDuty's Events API v2 endpoint that `pagerduty` alert channels send to (operator setting, trusted). */
  PAGERDUTY_EVENTS_URL: z.url().default('https://events.pagerduty.com/v2/enqueue'),
  /**
   * Recovery hysteresis: after a `tunnel.down` was sent, the incident is closed (`tunnel.up`) only
   * once the tunnel has stayed up this long; a down within it continues the same incident.
   */
  RECOVERY_SETTLE_MS: z.coerce.number().int().min(0).default(60_000),
  /** A link put into alert channel messages (Slack, PagerDuty, webhook): `{tunnelId}` is replaced. */
  ALERT_LINK_URL: z
    .string()
    .regex(/^https?:\/\/\S+$/, 'must be an http(s) URL, e.g. https://console.example.com/tunnels/{tunnelId}')
    .optional(),
  /** Alert channels a workspace may hold; one more is 409 `quota_exceeded`. */
  MAX_ALERT_CHANNELS_PER_WORKSPACE: z.coerce.number().int().min(1).max(1_000).default(20),
  /**
   * `connect.host` by tunnel port, `FROM-TO=HOST,...` (connect-hosts.ts): one stable address per
   * block of ports whichever gateway carries the tunnel (in AWS, the internal load balancers in
   * front of every gateway task). Must cover all of `TUNNEL_PORT_RANGE`. Unset: the address of the
   * gateway that carries the tunnel (`WORKER_ADDRESS`, else `TUNNEL_BIND_HOST`).
   */
  CONNECT_HOSTS: z
    .string()
    .transform((value, ctx) => {
      const parsed = parseConnectHosts(value);
      if ('problems' in parsed) {
        for (const problem of parsed.problems) ctx.addIssue({ code: 'custom', message: problem });
        return z.NEVER;
      }
      return parsed.blocks;
    })
    .optional(),
  /**
   * The connect-targets Lambda (AWS only): the gateway service's target group, which ECS keeps
   * (every gateway task, draining ones marked), mirrored into every connect load balancer's.
   */
  GATEWAY_TARGET_GROUP_ARN: z
    .string()
    .regex(ELB_ARN('targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}'), 'must be a target group ARN')
    .optional(),
  /** The connect-targets Lambda: the internal connect load balancers whose target groups it keeps. */
  CONNECT_LOAD_BALANCER_ARNS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(
      z
        .array(
          z.string().regex(ELB_ARN('loadbalancer/net/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}'), 'must be NLB ARNs'),
        )
        .min(1),
    )
    .optional(),
});

export type Env = z.infer<typeof envSchema>;
export type LogLevel = Env['LOG_LEVEL'];
export type PortRange = { from: number; to: number };

/** Parses the environment; throws `ConfigError` naming every bad variable. Unset or empty means default. */
export function parseEnv(env: Record<string, string | undefined>): Env {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = envSchema.safeParse(present);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`);
  }
  const { CONNECT_HOSTS: blocks, TUNNEL_PORT_RANGE: range } = result.data;
  // A tunnel on a port no block covers would have no address to show.
  const gaps = blocks ? uncoveredPorts(blocks, range) : [];
  if (gaps.length > 0) {
    throw new ConfigError(
      `invalid configuration: CONNECT_HOSTS: covers no host for TUNNEL_PORT_RANGE port(s) ${gaps.join(', ')}`,
    );
  }
  return result.data;
}

/**
 * The variables `parseEnv` reads back as `env`: how a runtime hands its configuration, parsed once,
 * to a worker thread that parses it again at its own boundary.
 */
export function envVariables(env: Env): Record<string, string> {
  const variables: Record<string, string> = {};
  const { CONNECT_HOSTS: connectHosts, ...rest } = env;
  if (connectHosts) variables.CONNECT_HOSTS = formatConnectHosts(connectHosts);
  for (const [name, value] of Object.entries(rest)) {
    if (value === undefined) continue;
    if (typeof value !== 'object') variables[name] = String(value);
    else if (Array.isArray(value)) variables[name] = value.join(',');
    else if ('from' in value) variables[name] = `${value.from}-${value.to}`;
    else variables[name] = `${value.start}:${value.rate}:${value.full}`;
  }
  return variables;
}

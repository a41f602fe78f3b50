/**
 * Deployment settings: CDK context (`cdk.json`, or `-c key=value` on the command line) parsed once
 * by the app with zod, so a typo fails the synth naming the key instead of deploying a surprise.
 * Constructs receive the parsed settings as props and never read context themselves.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseEnv } from '../../shared/config';
import { hostProblem } from '../../shared/hosts';
import { connectBlocks, type PortBlock } from './connect-blocks';
import { GATEWAY_CONTROL_PORT, GATEWAY_HEALTH_PORT, GATEWAY_SSH_PORT } from './ports';

/** `-c` values arrive as strings, cdk.json values as JSON: accept both for lists. */
const stringList = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : v,
  z.array(z.string().min(1)),
);

/** Names of Secrets Manager secrets: letters, digits and `/_+=.@-`. */
const secretPrefix = z
  .string()
  .regex(/^[A-Za-z0-9/_+=.@-]{1,100}$/, 'letters, digits and /_+=.@- only')
  .refine((v) => !v.endsWith('/'), 'must not end with /');

export const SettingsSchema = z.object({
  /**
   * Host name written into customer commands (a DNS name you point at the NLB). Unset: the NLB's
   * own DNS name, which changes if the load balancer is ever replaced.
   */
  publicSshHost: z
    .string()
    .superRefine((host, ctx) => {
      // Written into every customer command and known_hosts line (shared/hosts.ts).
      const problem = hostProblem(host);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
  /** Subscribed to the alerts topic by email (on-call confirms the subscription once). */
  alertEmail: z.email().optional(),
  /** Secrets live under `<prefix>/...`: the gateway host key, the admin token, tunnel keys. */
  secretPrefix: secretPrefix.default('tunnelkeeper'),
  /**
   * Ports allocated to tunnels: one per tunnel, each a listener of an internal connect load
   * balancer reachable from the platform security group only (connect-blocks.ts bounds it).
   */
  tunnelPortRange: z.string().default('20000-20099'),
  /** Gateway tasks; at least two so a task replacement never takes the endpoint down. */
  gatewayTaskCount: z.coerce.number().int().min(2).max(100).default(2),
  /** Fargate task size (ARM64): 1 vCPU / 2 GiB holds thousands of idle tunnels. */
  gatewayCpu: z.coerce.number().int().min(256).default(1024),
  gatewayMemoryMiB: z.coerce.number().int().min(512).default(2048),
  /** Steady requests per second across the HTTP API, and the burst above it. */
  apiRateLimit: z.coerce.number().positive().default(50),
  apiBurstLimit: z.coerce.number().int().positive().default(100),
  /**
   * Existing Elastic IP allocations for the NAT gateways (one per AZ), to keep the egress IPs that
   * customers allowlisted across a re-created stack. Unset: the stack allocates them (retained on
   * stack deletion).
   */
  egressEipAllocationIds: stringList.optional(),
  /**
   * The public addresses of `egressEipAllocationIds`, in the same order (`aws ec2 describe-addresses
   * --allocation-ids ...`): the API tells customers these (`GET /v1/info`). Only with those ids; the
   * stack knows the addresses of the Elastic IPs it allocates itself.
   */
  egressIps: stringList.optional(),
  heartbeatIntervalMs: z.coerce.number().int().min(1_000).default(15_000),
  sshKeepaliveIntervalMs: z.coerce.number().int().min(1_000).default(15_000),
  downGraceMs: z.coerce.number().int().min(0).default(120_000),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
});

export type Settings = z.infer<typeof SettingsSchema> & {
  /** The tunnel port range parsed exactly as the runtimes parse `TUNNEL_PORT_RANGE`. */
  portRange: { from: number; to: number };
  /** The range cut into the blocks of the internal connect load balancers, one each. */
  connectBlocks: PortBlock[];
};

/** Context keys the app reads; any other key is CDK's own (feature flags and the like). */
export const SETTINGS_KEYS = Object.keys(SettingsSchema.shape) as (keyof typeof SettingsSchema.shape)[];

/** Parses the settings from context values; throws naming every bad key. */
export function parseSettings(context: Record<string, unknown>): Settings {
  const present = Object.fromEntries(
    SETTINGS_KEYS.filter((key) => context[key] !== undefined && context[key] !== '').map((key) => [
      key,
      context[key],
    ]),
  );
  const result = SettingsSchema.safeParse(present);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid CDK context: ${lines.join('; ')}`);
  }
  // The runtimes' own parser: the stack can only open the range the gateway will really use.
  let portRange: Settings['portRange'];
  try {
    portRange = parseEnv({ TUNNEL_PORT_RANGE: result.data.tunnelPortRange }).TUNNEL_PORT_RANGE;
  } catch (err) {
    throw new Error(`invalid CDK context: tunnelPortRange: ${err instanceof Error ? err.message : err}`);
  }
  // A tunnel listener on one of these would fail to bind, or be opened to the platform group.
  const taken = [GATEWAY_SSH_PORT, GATEWAY_HEALTH_PORT, GATEWAY_CONTROL_PORT].filter(
    (port) => port >= portRange.from && port <= portRange.to,
  );
  if (taken.length > 0) {
    throw new Error(
      `invalid CDK context: tunnelPortRange: must not include the gateway's own port ${taken.join(', ')}`,
    );
  }
  let blocks: PortBlock[];
  try {
    blocks = connectBlocks(portRange, result.data.gatewayTaskCount);
  } catch (err) {
    throw new Error(`invalid CDK context: tunnelPortRange: ${err instanceof Error ? err.message : err}`);
  }
  const { egressEipAllocationIds: eips, egressIps } = result.data;
  if (eips && eips.length !== AZ_COUNT) {
    throw new Error(`invalid CDK context: egressEipAllocationIds: expected ${AZ_COUNT}, one per AZ`);
  }
  checkEgressIps(egressIps, eips);
  return { ...result.data, portRange, connectBlocks: blocks };
}

/** `egressIps` goes with `egressEipAllocationIds`: one IPv4 address (what an Elastic IP is) per allocation. */
function checkEgressIps(ips: string[] | undefined, allocationIds: string[] | undefined): void {
  const fail = (why: string) => {
    throw new Error(`invalid CDK context: egressIps: ${why}`);
  };
  if (!allocationIds) {
    if (ips) fail('only with egressEipAllocationIds (the stack knows the addresses it allocates)');
    return;
  }
  if (!ips) fail('give the addresses of egressEipAllocationIds, in their order: GET /v1/info lists them');
  const bad = ips?.filter((ip) => isIP(ip) !== 4) ?? [];
  if (bad.length > 0) fail(`not an IPv4 address: ${bad.map((ip) => JSON.stringify(ip)).join(', ')}`);
  if (ips?.length !== allocationIds.length) fail(`expected ${allocationIds.length}, one per allocation`);
}

/** Availability zones the VPC spans; one NAT gateway (and egress IP) in each. */
export const AZ_COUNT = 2;

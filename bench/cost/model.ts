/**
 * The monthly AWS bill of one deployment at a number of tunnels, per component: the bench's
 * measured counts (DynamoDB reads and writes per minute at several tunnel counts, per login and per
 * API call; memory per idle tunnel; sweep duration) times public prices (prices.ts), under the
 * assumptions below (docs/cost-model.md explains each). Pure arithmetic.
 */
import { MAX_CONNECT_LOAD_BALANCERS, portsPerLoadBalancer } from '../../cdk/lib/connect-blocks';
import type { Prices } from './prices';

/** What the bench measured (inputs.ts reads it from bench/results.json). */
export interface Measured {
  /** Steady state with one gateway process, ascending by tunnels; the first at 1 tunnel. */
  dynamo: { tunnels: number; readUnitsPerMin: number; writeUnitsPerMin: number; sweepMs: number | null }[];
  /** DynamoDB request units of one login beyond the steady rate (the login, its state write, its `up`). */
  perLogin: { readUnits: number; writeUnits: number };
  /** DynamoDB request units of one API call (a status read). */
  perApiCall: { readUnits: number; writeUnits: number };
  /** One full status pass (the backstop) over every tunnel the idle phase held: per tunnel. */
  fullPass: { tunnels: number; msPerTunnel: number; readUnitsPerTunnel: number };
  /** Gateway memory per idle reverse tunnel, and the process's own before any. */
  memoryPerTunnelKb: number;
  baselineRssBytes: number;
  /** How often the bench's stack swept. */
  sweepIntervalMs: number;
}

export interface Assumptions {
  /** Idle tunnels one 2-vCPU gateway task carries (DESIGN.md). */
  tunnelsPerTask: number;
  /** Tasks at least (the stack's minimum), and spare ones so any task can fail or be replaced. */
  minTasks: number;
  spareTasks: number;
  taskVcpu: number;
  /** Task memory: this many times the measured need at `tunnelsPerTask`, at least `minTaskGb`. */
  memoryHeadroom: number;
  minTaskGb: number;
  /** Share of tunnels that are standard (we connect out through NAT); the rest are reverse. */
  standardShare: number;
  /** GB a standard tunnel moves through NAT per day, both ways, and the share of it sent out. */
  natGbPerStandardTunnelDay: number;
  natOutShare: number;
  /** GB a reverse tunnel moves through the public NLB per day; every tunnel's through a connect NLB. */
  gbPerReverseTunnelDay: number;
  gbPerTunnelDay: number;
  reconnectsPerTunnelDay: number;
  testCallsPerTunnelDay: number;
  /** Other API calls per tunnel per day (dashboards polling status, scripts). */
  apiCallsPerTunnelDay: number;
  apiLambdaMs: number;
  apiLambdaGb: number;
  /** The sweeper runs this often in AWS (cdk/lib/sweeper.ts), with this memory and timeout. */
  sweepIntervalMs: number;
  sweeperLambdaGb: number;
  sweeperTimeoutMs: number;
  /** The backstop full pass (cdk/lib/sweeper.ts, every 6 h): its cost per tunnel is measured. */
  fullPassesPerDay: number;
  connectTargetsLambdaSeconds: number;
  connectTargetsLambdaGb: number;
  /** Secrets: one per standard tunnel, the shared ones; reads per standard reconnect and /test. */
  secretsPerStandardTunnel: number;
  sharedSecrets: number;
  secretReadsPerUse: number;
  /** Gateway, API and sweeper log bytes per tunnel per day. */
  logBytesPerTunnelDay: number;
  /** VPC flow logs (all traffic, 10-minute aggregation): bytes per record. */
  flowLogBytesPerRecord: number;
  /** Records of one long-lived connection per day: 144 windows × 2 directions × 2 interfaces. */
  flowRecordsPerConnectionDay: number;
  /** Each connect target group health-checks each task every 10 s from each AZ's node. */
  healthChecksPerPortTaskDay: number;
  /** Records of one health check: a new flow, 2 directions × 2 interfaces. */
  flowRecordsPerHealthCheck: number;
  customMetrics: number;
  alarms: number;
  /** Table bytes per tunnel (items and events kept by TTL). */
  storedBytesPerTunnel: number;
  /** NAT gateways and the public NLB's addresses: one each per AZ. */
  availabilityZones: number;
}

export const ASSUMPTIONS: Assumptions = {
  tunnelsPerTask: 10_000,
  minTasks: 2,
  spareTasks: 1,
  taskVcpu: 2,
  memoryHeadroom: 2,
  minTaskGb: 4,
  standardShare: 0.5,
  natGbPerStandardTunnelDay: 0.5,
  natOutShare: 0.1,
  gbPerReverseTunnelDay: 0.5,
  gbPerTunnelDay: 0.5,
  reconnectsPerTunnelDay: 4,
  testCallsPerTunnelDay: 1,
  apiCallsPerTunnelDay: 100,
  apiLambdaMs: 50,
  apiLambdaGb: 1,
  sweepIntervalMs: 60_000,
  sweeperLambdaGb: 0.5,
  sweeperTimeoutMs: 55_000,
  fullPassesPerDay: 4,
  connectTargetsLambdaSeconds: 2,
  connectTargetsLambdaGb: 0.25,
  secretsPerStandardTunnel: 1,
  sharedSecrets: 4,
  secretReadsPerUse: 1,
  logBytesPerTunnelDay: 10_000,
  flowLogBytesPerRecord: 130,
  flowRecordsPerConnectionDay: 144 * 2 * 2,
  healthChecksPerPortTaskDay: (86_400 / 10) * 2,
  flowRecordsPerHealthCheck: 2 * 2,
  customMetrics: 60,
  alarms: 13,
  storedBytesPerTunnel: 20_000,
  availabilityZones: 2,
};

/** Default regional quotas (cdk/lib/connect-blocks.ts): Network Load Balancers, target groups. */
export const REGION_NLB_QUOTA = 50;
export const REGION_TARGET_GROUP_QUOTA = 3_000;

export const HOURS_PER_MONTH = 730;
const DAYS_PER_MONTH = 30;
const MINUTES_PER_MONTH = HOURS_PER_MONTH * 60;
const GB = 1e9;
const GIB = 2 ** 30;

export interface Component {
  name: string;
  usd: number;
  /** What was counted, for the quantities table. */
  detail: string;
}

export interface Estimate {
  tunnels: number;
  components: Component[];
  totalUsd: number;
  quantities: {
    tasks: number;
    taskGb: number;
    connectLoadBalancers: number;
    /** Connect health checks each task answers (one target group per port, every AZ's node). */
    healthChecksPerTaskSecond: number;
    readUnitsPerMonth: number;
    writeUnitsPerMonth: number;
    sweepMs: number;
    logGbPerMonth: number;
    flowLogGbPerMonth: number;
  };
  /** Limits the design as built would break at this size. */
  limits: string[];
}

/**
 * `points` (x ascending) read at `x`: linear between neighbours, the first value below the first
 * point, and the last segment's line beyond the last (never below 0).
 */
export function interpolate(points: { x: number; y: number }[], x: number): number {
  const first = points[0];
  if (!first) throw new Error('no points to interpolate');
  if (points.length === 1 || x <= first.x) return first.y;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1];
    const b = points[i];
    if (!a || !b) continue;
    if (x <= b.x || i === points.length - 1) {
      const slope = b.x === a.x ? 0 : (b.y - a.y) / (b.x - a.x);
      return Math.max(0, a.y + slope * (x - a.x));
    }
  }
  return first.y;
}

const usd = (n: number) => `$${n.toFixed(2)}`;
const count = (n: number) => Math.round(n).toLocaleString('en-US');
/** Gigabytes: tenths below 10, whole above. */
const gb = (n: number) => (n < 10 ? n.toFixed(1) : count(n));
/** Millions as `12.3 M`, smaller counts whole. */
const big = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toLocaleString('en-US', { maximumFractionDigits: 1 })} M` : count(n);

/** The bill at `tunnels` tunnels. */
export function estimate(tunnels: number, m: Measured, a: Assumptions, p: Prices): Estimate {
  const limits: string[] = [];
  const standard = tunnels * a.standardShare;
  const reverse = tunnels - standard;

  // Gateway tasks: sized for a full task's tunnels, whatever the load of each.
  const tasks = Math.max(a.minTasks, Math.ceil(tunnels / a.tunnelsPerTask) + a.spareTasks);
  const needBytes = m.baselineRssBytes + m.memoryPerTunnelKb * 1000 * a.tunnelsPerTask;
  const taskGb = Math.max(a.minTaskGb, Math.ceil((a.memoryHeadroom * needBytes) / GIB));
  const fargate =
    tasks * (a.taskVcpu * p.fargateVcpuHour.usd + taskGb * p.fargateGbHour.usd) * HOURS_PER_MONTH;

  // Load balancers: the public one (SSH :22) and the connect ones, one listener per tunnel port
  // (cdk/lib/connect-blocks.ts), every task a target of each port.
  const portsPerNlb = portsPerLoadBalancer(tasks);
  const connectNlbs = Math.ceil(tunnels / portsPerNlb);
  if (connectNlbs > MAX_CONNECT_LOAD_BALANCERS) {
    limits.push(
      `${count(connectNlbs)} connect load balancers of ${portsPerNlb} ports: the stack builds at most ${MAX_CONNECT_LOAD_BALANCERS}`,
    );
  }
  if (1 + connectNlbs > REGION_NLB_QUOTA) {
    limits.push(
      `${count(1 + connectNlbs)} load balancers: the region's default quota is ${REGION_NLB_QUOTA}`,
    );
  }
  if (tunnels > REGION_TARGET_GROUP_QUOTA) {
    limits.push(
      `${count(tunnels)} target groups (one per port): the region's default quota is ${count(REGION_TARGET_GROUP_QUOTA)}`,
    );
  }
  const healthChecksPerTaskSecond = (tunnels * a.healthChecksPerPortTaskDay) / 86_400;
  const publicNlcu = Math.max(
    reverse / 100_000,
    (reverse * a.reconnectsPerTunnelDay) / 86_400 / 800,
    (reverse * a.gbPerReverseTunnelDay) / 24,
  );
  const connectNlcu = (tunnels * a.gbPerTunnelDay) / 24;
  const nlb =
    (1 + connectNlbs) * p.nlbHour.usd * HOURS_PER_MONTH +
    (publicNlcu + connectNlcu) * p.nlcuHour.usd * HOURS_PER_MONTH;

  // NAT: standard tunnels' SSH to bastions leaves through it (DynamoDB has a gateway endpoint).
  const natGb = standard * a.natGbPerStandardTunnelDay * DAYS_PER_MONTH;
  const nat = a.availabilityZones * p.natHour.usd * HOURS_PER_MONTH + natGb * p.natGb.usd;
  const dataOut = natGb * a.natOutShare * p.dataOutGb.usd;
  const publicIps = 2 * a.availabilityZones * p.publicIpv4Hour.usd * HOURS_PER_MONTH;

  // DynamoDB: the measured steady rate of one gateway at this size, each further task's own
  // (its heartbeats: the 1-tunnel figure, which also holds the sweeper's fixed share), logins
  // (each reconnect's `up` measured; its `down` taken to write as much), API calls, and the
  // backstop full passes. Reads beyond the 1-tunnel figure would be the periodic pass's (status
  // follows changes, so it should have none): scaled from the bench's sweep interval to AWS's.
  // Writes as measured (their growth follows the heartbeat).
  const at = (pick: (d: Measured['dynamo'][number]) => number) =>
    interpolate(
      m.dynamo.map((d) => ({ x: d.tunnels, y: pick(d) })),
      tunnels,
    );
  const one = m.dynamo[0];
  if (!one) throw new Error('no DynamoDB counts');
  const sweepScale = m.sweepIntervalMs / a.sweepIntervalMs;
  const steadyReads = one.readUnitsPerMin + (at((d) => d.readUnitsPerMin) - one.readUnitsPerMin) * sweepScale;
  const logins = tunnels * a.reconnectsPerTunnelDay * DAYS_PER_MONTH;
  const calls = tunnels * (a.apiCallsPerTunnelDay + a.testCallsPerTunnelDay) * DAYS_PER_MONTH;
  const fullPasses = a.fullPassesPerDay * DAYS_PER_MONTH;
  const readUnits =
    (steadyReads + (tasks - 1) * one.readUnitsPerMin) * MINUTES_PER_MONTH +
    logins * m.perLogin.readUnits +
    calls * m.perApiCall.readUnits +
    fullPasses * tunnels * m.fullPass.readUnitsPerTunnel;
  const writeUnits =
    (at((d) => d.writeUnitsPerMin) + (tasks - 1) * one.writeUnitsPerMin) * MINUTES_PER_MONTH +
    logins * 2 * m.perLogin.writeUnits +
    calls * m.perApiCall.writeUnits;
  const storedGb = (tunnels * a.storedBytesPerTunnel) / GB;
  const dynamoReads = (readUnits / 1e6) * p.dynamoReadMillion.usd;
  const dynamoWrites = (writeUnits / 1e6) * p.dynamoWriteMillion.usd;
  const dynamoStorage = storedGb * (p.dynamoStorageGbMonth.usd + p.dynamoPitrGbMonth.usd);

  // Lambda: the API per call, the sweeper's periodic pass once a minute for as long as the bench's
  // took at this size and its full pass four times a day, the connect-targets function once a minute.
  const swept = m.dynamo.filter((d) => d.sweepMs !== null).map((d) => ({ x: d.tunnels, y: d.sweepMs ?? 0 }));
  const sweepMs = swept.length > 0 ? interpolate(swept, tunnels) : 0;
  if (sweepMs > a.sweeperTimeoutMs) {
    limits.push(
      `a sweep takes ${Math.round(sweepMs / 1000)} s, past the sweeper's ${a.sweeperTimeoutMs / 1000} s timeout`,
    );
  }
  const fullPassMs = tunnels * m.fullPass.msPerTunnel;
  if (fullPassMs > a.sweeperTimeoutMs) {
    limits.push(
      `a full pass takes ${Math.round(fullPassMs / 1000)} s, past the sweeper's ${a.sweeperTimeoutMs / 1000} s timeout`,
    );
  }
  const invocations = calls + 2 * MINUTES_PER_MONTH + fullPasses;
  const gbSeconds =
    calls * (a.apiLambdaMs / 1000) * a.apiLambdaGb +
    MINUTES_PER_MONTH * (Math.min(sweepMs, a.sweeperTimeoutMs) / 1000) * a.sweeperLambdaGb +
    fullPasses * (Math.min(fullPassMs, a.sweeperTimeoutMs) / 1000) * a.sweeperLambdaGb +
    MINUTES_PER_MONTH * a.connectTargetsLambdaSeconds * a.connectTargetsLambdaGb;
  const lambda = (invocations / 1e6) * p.lambdaRequestMillion.usd + gbSeconds * p.lambdaGbSecond.usd;
  const apiGateway = (calls / 1e6) * p.httpApiMillion.usd;

  // Secrets Manager: a standard tunnel's key, read on each reconnect and /test.
  const secrets = standard * a.secretsPerStandardTunnel + a.sharedSecrets;
  const secretCalls =
    standard * (a.reconnectsPerTunnelDay + a.testCallsPerTunnelDay) * a.secretReadsPerUse * DAYS_PER_MONTH;
  const secretsUsd = secrets * p.secretMonth.usd + (secretCalls / 10_000) * p.secretCalls10k.usd;

  // CloudWatch: logs (kept a month), VPC flow logs of every connection and health check, metrics, alarms.
  const logGb = (tunnels * a.logBytesPerTunnelDay * DAYS_PER_MONTH) / GB;
  const flowRecordsPerDay =
    tunnels * a.flowRecordsPerConnectionDay +
    tunnels * tasks * a.healthChecksPerPortTaskDay * a.flowRecordsPerHealthCheck;
  const flowLogGb = (flowRecordsPerDay * a.flowLogBytesPerRecord * DAYS_PER_MONTH) / GB;
  const logs = (logGb + flowLogGb) * (p.logsIngestedGb.usd + p.logsStoredGbMonth.usd);
  const metrics = a.customMetrics * p.metricMonth.usd + a.alarms * p.alarmMonth.usd;

  const components: Component[] = [
    {
      name: 'Fargate gateway tasks',
      usd: fargate,
      detail: `${tasks} × ${a.taskVcpu} vCPU / ${taskGb} GB`,
    },
    {
      name: 'Network Load Balancers',
      usd: nlb,
      detail: `1 public + ${count(connectNlbs)} connect (${portsPerNlb} ports each); ${(publicNlcu + connectNlcu).toLocaleString('en-US', { maximumFractionDigits: 1 })} NLCU`,
    },
    {
      name: 'NAT gateways',
      usd: nat,
      detail: `${a.availabilityZones} gateways, ${gb(natGb)} GB processed`,
    },
    { name: 'Data transfer out', usd: dataOut, detail: `${gb(natGb * a.natOutShare)} GB` },
    { name: 'Public IPv4 addresses', usd: publicIps, detail: `${2 * a.availabilityZones} addresses` },
    { name: 'DynamoDB reads', usd: dynamoReads, detail: `${big(readUnits)} read units` },
    { name: 'DynamoDB writes', usd: dynamoWrites, detail: `${big(writeUnits)} write units` },
    { name: 'DynamoDB storage and backup', usd: dynamoStorage, detail: `${gb(storedGb)} GB` },
    {
      name: 'Lambda (API, sweeper, connect targets)',
      usd: lambda,
      detail: `${big(invocations)} requests, ${big(gbSeconds)} GB-s`,
    },
    { name: 'API Gateway (HTTP API)', usd: apiGateway, detail: `${big(calls)} requests` },
    {
      name: 'Secrets Manager',
      usd: secretsUsd,
      detail: `${count(secrets)} secrets, ${big(secretCalls)} calls`,
    },
    {
      name: 'CloudWatch logs (incl. VPC flow logs)',
      usd: logs,
      detail: `${gb(logGb)} GB logs + ${gb(flowLogGb)} GB flow logs`,
    },
    {
      name: 'CloudWatch metrics and alarms',
      usd: metrics,
      detail: `${a.customMetrics} metrics, ${a.alarms} alarms`,
    },
  ];
  for (const c of components) if (!Number.isFinite(c.usd)) throw new Error(`${c.name}: ${usd(c.usd)}`);
  return {
    tunnels,
    components,
    totalUsd: components.reduce((sum, c) => sum + c.usd, 0),
    quantities: {
      tasks,
      taskGb,
      connectLoadBalancers: connectNlbs,
      healthChecksPerTaskSecond,
      readUnitsPerMonth: readUnits,
      writeUnitsPerMonth: writeUnits,
      sweepMs,
      logGbPerMonth: logGb,
      flowLogGbPerMonth: flowLogGb,
    },
    limits,
  };
}

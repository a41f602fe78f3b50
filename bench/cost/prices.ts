/**
 * Public AWS list prices the cost model uses: us-east-1 (N. Virginia), on demand, Linux/ARM where
 * the stack runs ARM (Fargate, Lambda), first pricing tier. Each with the page it comes from. AWS
 * changes prices without notice: check the pages before relying on a figure, and change them here
 * only (then `npm run cost-model`).
 */

export interface Price {
  usd: number;
  per: string;
  source: string;
}

/** When the prices below were last compared with their pages. */
export const PRICES_CHECKED = '2026-12-05';

const FARGATE = 'https://aws.amazon.com/fargate/pricing/';
const ELB = 'https://aws.amazon.com/elasticloadbalancing/pricing/';
const VPC = 'https://aws.amazon.com/vpc/pricing/';
const EC2 = 'https://aws.amazon.com/ec2/pricing/on-demand/';
const DYNAMODB = 'https://aws.amazon.com/dynamodb/pricing/on-demand/';
const LAMBDA = 'https://aws.amazon.com/lambda/pricing/';
const API_GATEWAY = 'https://aws.amazon.com/api-gateway/pricing/';
const SECRETS = 'https://aws.amazon.com/secrets-manager/pricing/';
const CLOUDWATCH = 'https://aws.amazon.com/cloudwatch/pricing/';

export const PRICES = {
  fargateVcpuHour: { usd: 0.03238, per: 'vCPU-hour (Linux/ARM)', source: FARGATE },
  fargateGbHour: { usd: 0.00356, per: 'GB-hour (Linux/ARM)', source: FARGATE },
  nlbHour: { usd: 0.0225, per: 'Network Load Balancer-hour', source: ELB },
  /** TCP: 800 new flows/s, 100,000 active flows, or 1 GB processed per hour, whichever is highest. */
  nlcuHour: { usd: 0.006, per: 'NLCU-hour', source: ELB },
  natHour: { usd: 0.045, per: 'NAT gateway-hour', source: VPC },
  natGb: { usd: 0.045, per: 'GB processed by a NAT gateway', source: VPC },
  publicIpv4Hour: { usd: 0.005, per: 'public IPv4 address-hour', source: VPC },
  dataOutGb: { usd: 0.09, per: 'GB out to the internet (first 10 TB)', source: EC2 },
  dynamoReadMillion: { usd: 0.125, per: 'million read request units', source: DYNAMODB },
  dynamoWriteMillion: { usd: 0.625, per: 'million write request units', source: DYNAMODB },
  dynamoStorageGbMonth: { usd: 0.25, per: 'GB-month stored', source: DYNAMODB },
  dynamoPitrGbMonth: { usd: 0.2, per: 'GB-month of continuous backup (PITR)', source: DYNAMODB },
  lambdaRequestMillion: { usd: 0.2, per: 'million Lambda requests', source: LAMBDA },
  lambdaGbSecond: { usd: 0.0000133334, per: 'Lambda GB-second (Arm)', source: LAMBDA },
  httpApiMillion: { usd: 1.0, per: 'million HTTP API requests', source: API_GATEWAY },
  secretMonth: { usd: 0.4, per: 'secret-month', source: SECRETS },
  secretCalls10k: { usd: 0.05, per: '10,000 Secrets Manager API calls', source: SECRETS },
  logsIngestedGb: {
    usd: 0.5,
    per: 'GB of logs ingested (standard, and vended logs such as flow logs)',
    source: CLOUDWATCH,
  },
  logsStoredGbMonth: { usd: 0.03, per: 'GB-month of logs stored', source: CLOUDWATCH },
  metricMonth: { usd: 0.3, per: 'custom metric-month (first 10,000)', source: CLOUDWATCH },
  alarmMonth: { usd: 0.1, per: 'standard-resolution alarm metric-month', source: CLOUDWATCH },
} satisfies Record<string, Price>;

export type Prices = { [K in keyof typeof PRICES]: Price };

/**
 * Every cdk-nag (AwsSolutions) and CloudFormation-validation finding this stack keeps, each on the
 * one construct it concerns and with the reason it is kept. Anything not listed here fails the
 * synth; the tests check that each acknowledgment still matches a finding and has a reason.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import type { TunnelkeeperStack } from './tunnelkeeper-stack';

export interface NagAcknowledgment {
  /** Construct path below the stack. */
  path: string;
  id: string;
  reason: string;
}

const LAMBDA_LOGS_POLICY =
  'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]';
const LAMBDA_VPC_POLICY =
  'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]';
const LOGS_REASON =
  'AWS-managed AWSLambdaBasicExecutionRole grants only CloudWatch Logs writes, which every Lambda needs; AWS keeps it current';
const NODE_22_REASON =
  'Node 22 is deliberate (DESIGN.md): the bundles target node22 and the gateway image runs node:22; Lambda supports it ' +
  'into 2027, and all three move to a newer runtime together, after the tests pass on it';

export function nagAcknowledgments(stack: TunnelkeeperStack): NagAcknowledgment[] {
  const tunnelSecrets = `arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${stack.settings.secretPrefix}/tunnels/*`;
  const tunnelSecretsReason =
    'Tunnel secrets are created at run time and named by tunnel id (<prefix>/tunnels/<id>): the prefix is the ' +
    'narrowest scope there is; no other secret matches it';
  return [
    {
      path: 'Network/NlbSecurityGroup',
      id: 'AwsSolutions-EC23',
      reason:
        'The reverse-tunnel SSH endpoint is public by design: customers run ssh -R from networks we do not know. Only ' +
        'TCP 22 is open, public-key auth only, with per-source limits in the gateway (client IP preserved)',
    },
    {
      path: 'Network/NlbSecurityGroup',
      id: 'CloudFormation-Validate::W2508',
      reason:
        'Same rule as AwsSolutions-EC23: port 22 from anywhere is the product (customers connect from anywhere)',
    },
    {
      path: 'Api/HttpApi/DefaultRoute',
      id: 'AwsSolutions-APIG4',
      reason:
        'The application authenticates every route itself (Bearer API key per workspace, admin token for /v1/admin, ' +
        'constant-time compare); /healthz and /openapi.json are public by contract (CONTRACT.md)',
    },
    {
      path: 'Gateway/Task',
      id: 'AwsSolutions-ECS2',
      reason:
        'The environment holds configuration only (table name, secret prefix, ports, intervals); every secret is read ' +
        'from Secrets Manager at run time, never passed through the environment',
    },
    {
      path: 'Gateway/Nlb',
      id: 'AwsSolutions-ELB2',
      reason:
        'NLB access logs exist only for TLS listeners; this NLB passes SSH through on TCP. Connections are recorded by ' +
        'the VPC flow logs and the gateway logs every login with its source address',
    },
    {
      path: 'Gateway/Task/ExecutionRole',
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ecr:GetAuthorizationToken supports no resource-level permission; the execution role names the image ' +
        'repository and the log group for everything else',
    },
    {
      path: 'Gateway/Task/TaskRole',
      id: `AwsSolutions-IAM5[Resource::${tunnelSecrets}]`,
      reason: tunnelSecretsReason,
    },
    {
      path: 'Api/Function/ServiceRole',
      id: `AwsSolutions-IAM5[Resource::${tunnelSecrets}]`,
      reason: tunnelSecretsReason,
    },
    { path: 'Api/Function/ServiceRole', id: LAMBDA_LOGS_POLICY, reason: LOGS_REASON },
    {
      path: 'Api/Function/ServiceRole',
      id: LAMBDA_VPC_POLICY,
      reason:
        'AWS-managed AWSLambdaVPCAccessExecutionRole grants the ENI permissions a Lambda in a VPC needs (they accept ' +
        'no resource scope); the API runs in the VPC so its outbound traffic uses the allowlisted egress IPs',
    },
    { path: 'Sweeper/Function/ServiceRole', id: LAMBDA_LOGS_POLICY, reason: LOGS_REASON },
    {
      path: 'Sweeper/Function/ServiceRole',
      id: LAMBDA_VPC_POLICY,
      reason:
        'AWS-managed AWSLambdaVPCAccessExecutionRole grants the ENI permissions a Lambda in a VPC needs (they accept ' +
        "no resource scope); the sweeper runs in the VPC so alerts to customers' channels leave from the egress IPs",
    },
    {
      path: 'Sweeper/Function/ServiceRole',
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'dynamodb:ListStreams supports no resource-level permission (it only lists stream ARNs); reading the ' +
        "stream's records is granted on the table's stream alone, for the event source that feeds the sweeper",
    },
    { path: 'Api/Function', id: 'AwsSolutions-L1', reason: NODE_22_REASON },
    { path: 'Sweeper/Function', id: 'AwsSolutions-L1', reason: NODE_22_REASON },
    { path: 'ConnectTargets/Function', id: 'AwsSolutions-L1', reason: NODE_22_REASON },
    { path: 'ConnectTargets/Function/ServiceRole', id: LAMBDA_LOGS_POLICY, reason: LOGS_REASON },
    {
      path: 'ConnectTargets/Function/ServiceRole',
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'elasticloadbalancing:DescribeTargetGroups and DescribeTargetHealth support no resource-level permission; ' +
        'they only read. Every change (RegisterTargets, DeregisterTargets) is granted separately, on tagged groups',
    },
    {
      path: 'ConnectTargets/Function/ServiceRole',
      id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:elasticloadbalancing:<AWS::Region>:<AWS::AccountId>:targetgroup/*/*]',
      reason:
        'The connect target groups get generated names (one per tunnel port, in nested stacks) and are too many to ' +
        'list in a policy; the statement is limited by condition to the groups tagged tunnelkeeper-connect with ' +
        "this stack's value, and to registering and deregistering targets",
    },
    ...stack.connect.loadBalancers.map((_, i) => ({
      path: `Connect/Lb${i + 1}/Nlb`,
      id: 'AwsSolutions-ELB2',
      reason:
        'NLB access logs exist only for TLS listeners; the connect load balancers pass tunnel connections through ' +
        'on TCP. Connections are recorded by the VPC flow logs and counted per tunnel by the gateway metrics',
    })),
    {
      path: 'Data/AdminToken',
      id: 'AwsSolutions-SMG4',
      reason:
        'The operator token is rotated by operators (README: put a new value; API instances read it at cold start); ' +
        'a rotation schedule would silently break the operator scripts that hold it',
    },
  ];
}

/** Records the acknowledgments on their constructs; throws if a path no longer exists. */
export function acknowledgeNagFindings(stack: TunnelkeeperStack): void {
  for (const { path, id, reason } of nagAcknowledgments(stack)) {
    Validations.of(findConstruct(stack, path)).acknowledge({ id, reason });
  }
}

function findConstruct(stack: Stack, path: string): IConstruct {
  let node: IConstruct = stack;
  for (const part of path.split('/')) {
    const child = node.node.tryFindChild(part);
    if (!child) throw new Error(`cdk-nag acknowledgment: no construct ${Stack.of(stack).stackName}/${path}`);
    node = child;
  }
  return node;
}

/**
 * The synthesized template is what DESIGN.md says (issue 6, acceptance 2): every resource and the
 * properties that matter, the network exposure (the NLB listener is the only public ingress, tunnel
 * ports open to the platform group only) and least-privilege IAM. Bundling is skipped here; the
 * synth test bundles for real.
 */
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { HEARTBEAT_FAILED_MESSAGE } from '../../../cdk/lib/alarms';
import {
  GATEWAY_CONTROL_PORT,
  GATEWAY_HEALTH_PORT,
  GATEWAY_SSH_PORT,
  PUBLIC_SSH_PORT,
} from '../../../cdk/lib/ports';
import type { TunnelkeeperStack } from '../../../cdk/lib/tunnelkeeper-stack';
import { parseEnv } from '../../../shared/config';
import { TTL_ATTRIBUTE, tableDefinition } from '../../../shared/store/table';
import { getAtt, ref, synthTemplate } from '../../helpers/cdk';

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON is untyped
type Json = any;

let stack: TunnelkeeperStack;
let template: Template;
let resources: Record<string, Json>;

const idOf = (construct: IConstruct): string => {
  const child = construct.node.defaultChild ?? construct;
  return Stack.of(construct).getLogicalId(child as CfnElement);
};
const ofType = (type: string): [string, Json][] =>
  Object.entries(resources).filter(([, resource]) => resource.Type === type);
const envOf = (logicalId: string): Record<string, Json> =>
  resources[logicalId].Properties.Environment.Variables;
const containerEnv = (): Record<string, Json> => {
  const [[, task]] = ofType('AWS::ECS::TaskDefinition') as [[string, Json]];
  return Object.fromEntries(
    task.Properties.ContainerDefinitions[0].Environment.map((e: Json) => [e.Name, e.Value]),
  );
};

/** Every ingress rule, inline in a group or standalone, as `{groupId, ...rule}`. */
function ingressRules(): Json[] {
  const inline = ofType('AWS::EC2::SecurityGroup').flatMap(([id, sg]) =>
    (sg.Properties.SecurityGroupIngress ?? []).map((rule: Json) => ({ group: id, ...rule })),
  );
  const standalone = ofType('AWS::EC2::SecurityGroupIngress').map(([, rule]) => ({
    group: rule.Properties.GroupId['Fn::GetAtt'][0],
    ...rule.Properties,
  }));
  return [...inline, ...standalone];
}

/** Every IAM statement of every policy and role, with where it comes from. */
function iamStatements(): { source: string; statement: Json }[] {
  const out: { source: string; statement: Json }[] = [];
  for (const [id, policy] of ofType('AWS::IAM::Policy')) {
    for (const statement of policy.Properties.PolicyDocument.Statement) out.push({ source: id, statement });
  }
  for (const [id, role] of ofType('AWS::IAM::Role')) {
    for (const inline of role.Properties.Policies ?? []) {
      for (const statement of inline.PolicyDocument.Statement) out.push({ source: id, statement });
    }
  }
  return out;
}
const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);
/** A resource as text, tokens included: `Fn::Join` pieces concatenated, refs as `${Ref}`. */
function arnText(resource: Json): string {
  if (typeof resource === 'string') return resource;
  if (resource['Fn::Join']) return resource['Fn::Join'][1].map(arnText).join('');
  if (resource.Ref) return `\${${resource.Ref}}`;
  if (resource['Fn::GetAtt']) return `\${${resource['Fn::GetAtt'].join('.')}}`;
  if (resource['Fn::Sub']) return resource['Fn::Sub'];
  return JSON.stringify(resource);
}
function policyOf(roleConstruct: IConstruct): Json[] {
  const roleId = idOf(roleConstruct);
  return ofType('AWS::IAM::Policy')
    .filter(([, policy]) => policy.Properties.Roles.some((r: Json) => r.Ref === roleId))
    .flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement);
}
const actionsOn = (statements: Json[], pattern: RegExp): string[] =>
  statements
    .filter((s) => list(s.Resource).some((r) => pattern.test(arnText(r))))
    .flatMap((s) => list(s.Action))
    .sort();

beforeAll(() => {
  ({ stack, template } = synthTemplate());
  resources = template.toJSON().Resources;
});

describe('network', () => {
  it('spans two AZs with a public and a private subnet in each', () => {
    const subnets = ofType('AWS::EC2::Subnet').map(([, s]) => s.Properties);
    expect(subnets).toHaveLength(4);
    const azs = new Set(subnets.map((s) => JSON.stringify(s.AvailabilityZone)));
    expect(azs.size).toBe(2);
    expect(subnets.filter((s) => s.MapPublicIpOnLaunch === true)).toHaveLength(2);
  });

  it('gives each AZ a NAT gateway on an Elastic IP the stack keeps, and outputs those IPs', () => {
    const eips = ofType('AWS::EC2::EIP');
    expect(eips).toHaveLength(2);
    for (const [, eip] of eips) {
      expect(eip.Properties.Domain).toBe('vpc');
      expect(eip.DeletionPolicy).toBe('Retain');
    }
    const nats = ofType('AWS::EC2::NatGateway').map(([, nat]) => nat.Properties.AllocationId);
    expect(nats.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))).toEqual(
      eips.map(([id]) => getAtt(id, 'AllocationId')),
    );
    template.hasOutput('EgressIps', { Value: { 'Fn::Join': [',', eips.map(([id]) => ref(id))] } });
  });

  it('tells the API those IPs, for GET /v1/info', () => {
    const eips = ofType('AWS::EC2::EIP');
    // An EIP's Ref is its address; the output customers were told of is the same list.
    expect(envOf(idOf(stack.api.fn)).EGRESS_IPS).toEqual({ 'Fn::Join': [',', eips.map(([id]) => ref(id))] });
    expect(envOf(idOf(stack.api.fn)).EGRESS_IPS).toEqual(template.toJSON().Outputs.EgressIps.Value);
  });

  it('sends every private subnet to the internet through its NAT gateway (the egress IPs)', () => {
    const natRoutes = ofType('AWS::EC2::Route').filter(([, r]) => r.Properties.NatGatewayId);
    expect(natRoutes).toHaveLength(2);
    for (const [, route] of natRoutes) expect(route.Properties.DestinationCidrBlock).toBe('0.0.0.0/0');
  });

  it('keeps existing egress IPs when their allocation ids are given, and tells the API their addresses', () => {
    const { template: given, stack: givenStack } = synthTemplate({
      context: {
        egressEipAllocationIds: 'eipalloc-0aaa,eipalloc-0bbb',
        egressIps: '198.51.100.7,198.51.100.8',
      },
    });
    given.resourceCountIs('AWS::EC2::EIP', 0);
    const allocations = Object.values(given.findResources('AWS::EC2::NatGateway')).map(
      (nat: Json) => nat.Properties.AllocationId,
    );
    expect(allocations.sort()).toEqual(['eipalloc-0aaa', 'eipalloc-0bbb']);
    given.hasOutput('EgressIpAllocationIds', { Value: 'eipalloc-0aaa,eipalloc-0bbb' });
    given.hasOutput('EgressIps', { Value: '198.51.100.7,198.51.100.8' });
    const apiFn = given.toJSON().Resources[idOf(givenStack.api.fn)];
    expect(apiFn.Properties.Environment.Variables.EGRESS_IPS).toBe('198.51.100.7,198.51.100.8');
  });

  it('logs the VPC flows and keeps DynamoDB traffic off the NAT', () => {
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL', ResourceType: 'VPC' });
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.dynamodb']] },
      VpcEndpointType: 'Gateway',
    });
  });
});

describe('exposure', () => {
  it('has exactly one public ingress: TCP 22 on the NLB security group', () => {
    const publicRules = ingressRules().filter((r) => r.CidrIp !== undefined || r.CidrIpv6 !== undefined);
    expect(publicRules).toEqual([
      expect.objectContaining({
        group: idOf(stack.network.nlbSecurityGroup),
        CidrIp: '0.0.0.0/0',
        IpProtocol: 'tcp',
        FromPort: PUBLIC_SSH_PORT,
        ToPort: PUBLIC_SSH_PORT,
      }),
    ]);
    // Only security-group sources otherwise: nothing else is reachable from outside the VPC.
    for (const rule of ingressRules()) {
      if (rule.CidrIp === undefined) expect(rule.SourceSecurityGroupId).toBeDefined();
    }
  });

  it('has one listener, public TCP 22 on the internet-facing NLB, forwarding to the SSH port', () => {
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 1);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Type: 'network',
      Scheme: 'internet-facing',
      SecurityGroups: [getAtt(idOf(stack.network.nlbSecurityGroup), 'GroupId')],
    });
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 1);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: PUBLIC_SSH_PORT,
      Protocol: 'TCP',
      DefaultActions: [{ Type: 'forward', TargetGroupArn: ref(idOf(stack.gateway.targetGroup)) }],
    });
    // The only other internet entry point is the HTTP API, which is AWS-managed and not in the VPC.
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
  });

  it('preserves client IPs, health-checks the separate health port and drains quickly', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: GATEWAY_SSH_PORT,
      Protocol: 'TCP',
      TargetType: 'ip',
      HealthCheckProtocol: 'HTTP',
      HealthCheckPort: String(GATEWAY_HEALTH_PORT),
      HealthCheckPath: '/',
      TargetGroupAttributes: Match.arrayWith([
        { Key: 'deregistration_delay.timeout_seconds', Value: '30' },
        { Key: 'preserve_client_ip.enabled', Value: 'true' },
        { Key: 'deregistration_delay.connection_termination.enabled', Value: 'true' },
      ]),
    });
  });

  it('lets the NLB reach the gateway tasks on the SSH and health ports, and nothing else', () => {
    const nlb = getAtt(idOf(stack.network.nlbSecurityGroup), 'GroupId');
    const fromNlb = ingressRules().filter(
      (r) => JSON.stringify(r.SourceSecurityGroupId) === JSON.stringify(nlb),
    );
    expect(fromNlb.map((r) => [r.group, r.FromPort, r.ToPort]).sort()).toEqual(
      [
        [idOf(stack.network.gatewaySecurityGroup), GATEWAY_HEALTH_PORT, GATEWAY_HEALTH_PORT],
        [idOf(stack.network.gatewaySecurityGroup), GATEWAY_SSH_PORT, GATEWAY_SSH_PORT],
      ].sort(),
    );
    // The NLB itself may only open connections to the gateway tasks, on those two ports.
    const nlbEgress = ofType('AWS::EC2::SecurityGroupEgress')
      .map(([, e]) => e.Properties)
      .filter((e) => JSON.stringify(e.GroupId) === JSON.stringify(nlb));
    expect(nlbEgress.map((e) => [e.GroupId, e.DestinationSecurityGroupId, e.FromPort]).sort()).toEqual(
      [
        [nlb, getAtt(idOf(stack.network.gatewaySecurityGroup), 'GroupId'), GATEWAY_SSH_PORT],
        [nlb, getAtt(idOf(stack.network.gatewaySecurityGroup), 'GroupId'), GATEWAY_HEALTH_PORT],
      ].sort(),
    );
    expect(resources[idOf(stack.network.nlbSecurityGroup)].Properties.SecurityGroupEgress).toBeUndefined();
  });

  it('lets only the platform security group reach the tunnel ports: on the connect load balancers, and through them alone on the tasks', () => {
    const { from, to } = stack.settings.portRange;
    const groupId = (construct: IConstruct) => getAtt(idOf(construct), 'GroupId');
    const overlapping = ingressRules().filter(
      (r) => r.IpProtocol === '-1' || (r.FromPort <= to && r.ToPort >= from),
    );
    expect(overlapping).toHaveLength(2);
    expect(overlapping).toEqual([
      expect.objectContaining({
        group: idOf(stack.network.gatewaySecurityGroup),
        IpProtocol: 'tcp',
        FromPort: from,
        ToPort: to,
        SourceSecurityGroupId: groupId(stack.network.connectSecurityGroup),
      }),
      expect.objectContaining({
        group: idOf(stack.network.connectSecurityGroup),
        IpProtocol: 'tcp',
        FromPort: from,
        ToPort: to,
        SourceSecurityGroupId: groupId(stack.network.platformSecurityGroup),
      }),
    ]);
    // Nothing else reaches the connect load balancers at all, on any port.
    expect(ingressRules().filter((r) => r.group === idOf(stack.network.connectSecurityGroup))).toHaveLength(
      1,
    );
    // No rule anywhere (nested stacks included) names an address range on those ports.
    for (const nested of stack.connect.loadBalancers.map(({ nlb }) => Stack.of(nlb))) {
      const nestedResources = Object.values<Json>(Template.fromStack(nested).toJSON().Resources);
      expect(nestedResources.filter((r) => /SecurityGroup/.test(r.Type))).toEqual([]);
    }
    template.hasOutput('PlatformSecurityGroupId', { Value: groupId(stack.network.platformSecurityGroup) });
  });

  it('lets the connect load balancers open connections to the gateway tasks on the tunnel ports and the health port only', () => {
    const connect = getAtt(idOf(stack.network.connectSecurityGroup), 'GroupId');
    const gateway = getAtt(idOf(stack.network.gatewaySecurityGroup), 'GroupId');
    const { from, to } = stack.settings.portRange;
    const egress = ofType('AWS::EC2::SecurityGroupEgress')
      .map(([, e]) => e.Properties)
      .filter((e) => JSON.stringify(e.GroupId) === JSON.stringify(connect));
    expect(egress.map((e) => [e.DestinationSecurityGroupId, e.IpProtocol, e.FromPort, e.ToPort])).toEqual(
      expect.arrayContaining([
        [gateway, 'tcp', from, to],
        [gateway, 'tcp', GATEWAY_HEALTH_PORT, GATEWAY_HEALTH_PORT],
      ]),
    );
    expect(egress).toHaveLength(2);
    expect(
      resources[idOf(stack.network.connectSecurityGroup)].Properties.SecurityGroupEgress,
    ).toBeUndefined();
    // Health checks from the connect load balancers reach the tasks' health port.
    expect(ingressRules()).toContainEqual(
      expect.objectContaining({
        group: idOf(stack.network.gatewaySecurityGroup),
        FromPort: GATEWAY_HEALTH_PORT,
        ToPort: GATEWAY_HEALTH_PORT,
        SourceSecurityGroupId: connect,
      }),
    );
  });

  it('opens the control port to the API Lambda and the gateway tasks (relays) alone, and nothing at all on the other groups', () => {
    const byGroup = (construct: IConstruct) => ingressRules().filter((r) => r.group === idOf(construct));
    expect(byGroup(stack.network.gatewaySecurityGroup)).toContainEqual(
      expect.objectContaining({
        FromPort: GATEWAY_CONTROL_PORT,
        ToPort: GATEWAY_CONTROL_PORT,
        SourceSecurityGroupId: getAtt(idOf(stack.network.apiSecurityGroup), 'GroupId'),
      }),
    );
    expect(byGroup(stack.network.gatewaySecurityGroup)).toContainEqual(
      expect.objectContaining({
        FromPort: GATEWAY_CONTROL_PORT,
        ToPort: GATEWAY_CONTROL_PORT,
        SourceSecurityGroupId: getAtt(idOf(stack.network.gatewaySecurityGroup), 'GroupId'),
      }),
    );
    // SSH and health from the public NLB, tunnel ports and health from the connect load balancers,
    // control from the API and from the tasks themselves.
    expect(byGroup(stack.network.gatewaySecurityGroup)).toHaveLength(6);
    const control = ingressRules().filter(
      (r) => r.FromPort <= GATEWAY_CONTROL_PORT && r.ToPort >= GATEWAY_CONTROL_PORT,
    );
    expect(control).toHaveLength(2);
    expect(byGroup(stack.network.platformSecurityGroup)).toEqual([]);
    expect(byGroup(stack.network.apiSecurityGroup)).toEqual([]);
  });

  it('lets the gateway tasks reach bastions on any port (through the NAT)', () => {
    expect(resources[idOf(stack.network.gatewaySecurityGroup)].Properties.SecurityGroupEgress).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: '-1' }),
    ]);
  });
});

describe('DynamoDB table', () => {
  it('has the keys and indexes the code creates locally (tableDefinition)', () => {
    const definition = tableDefinition('x');
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: definition.KeySchema,
      AttributeDefinitions: Match.arrayEquals(
        (definition.AttributeDefinitions ?? []).map((a) => Match.objectEquals({ ...a })),
      ),
      GlobalSecondaryIndexes: (definition.GlobalSecondaryIndexes ?? []).map((index) => ({
        IndexName: index.IndexName,
        KeySchema: index.KeySchema,
        Projection: index.Projection,
      })),
    });
  });

  it('is on-demand, point-in-time recoverable, TTL-expiring, encrypted and protected from deletion', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
        DeletionProtectionEnabled: true,
        SSESpecification: { SSEEnabled: true },
      }),
    });
  });
});

describe('IAM', () => {
  it('never grants a `*` resource on secrets or the table, and `*` only for the ECR login and ELB reads', () => {
    const wildcard = iamStatements().filter(({ statement }) => list(statement.Resource).includes('*'));
    expect(wildcard.map(({ statement }) => list(statement.Action).sort())).toEqual(
      expect.arrayContaining([
        ['ecr:GetAuthorizationToken'],
        ['elasticloadbalancing:DescribeTargetGroups', 'elasticloadbalancing:DescribeTargetHealth'],
        // It lists stream ARNs only; the records are read on the table's stream alone (below).
        ['dynamodb:ListStreams'],
      ]),
    );
    expect(wildcard).toHaveLength(3);
    for (const { statement } of iamStatements()) {
      const actions = list(statement.Action) as string[];
      if (
        actions.some(
          (a) =>
            a.startsWith('secretsmanager:') || (a.startsWith('dynamodb:') && a !== 'dynamodb:ListStreams'),
        )
      ) {
        for (const resource of list(statement.Resource)) expect(arnText(resource)).not.toBe('*');
      }
    }
  });

  it('scopes every secret statement to secrets under the prefix', () => {
    const prefix = stack.settings.secretPrefix;
    const secretStatements = iamStatements().filter(({ statement }) =>
      list(statement.Action).some((a: string) => a.startsWith('secretsmanager:')),
    );
    expect(secretStatements.length).toBeGreaterThan(0);
    for (const { statement } of secretStatements) {
      for (const resource of list(statement.Resource)) {
        const text = arnText(resource);
        // Either the admin token (a Ref to the stack's secret) or an ARN under `<prefix>/`.
        if (text === `\${${idOf(stack.data.adminToken)}}`) continue;
        expect(text).toMatch(
          new RegExp(`:secretsmanager:\\$\\{AWS::Region\\}:\\$\\{AWS::AccountId\\}:secret:${prefix}/`),
        );
        expect(text).toMatch(/(\/tunnels\/\*|-\?\?\?\?\?\?)$/);
      }
    }
  });

  it('scopes table access to the table and its three indexes, without scans or table management', () => {
    const table = idOf(stack.data.table);
    const isStreamAction = (a: string) =>
      [
        'dynamodb:ListStreams',
        'dynamodb:DescribeStream',
        'dynamodb:GetRecords',
        'dynamodb:GetShardIterator',
      ].includes(a);
    const dynamoStatements = iamStatements().filter(({ statement }) =>
      list(statement.Action).some((a: string) => a.startsWith('dynamodb:')),
    );
    const tableStatements = dynamoStatements.filter(({ statement }) =>
      list(statement.Action).some((a: string) => !isStreamAction(a)),
    );
    expect(tableStatements).toHaveLength(3); // API, sweeper, gateway
    // The sweeper's event source reads the table's stream, and nothing else through those statements.
    const streamStatements = dynamoStatements.filter((s) => !tableStatements.includes(s));
    for (const { statement } of streamStatements) {
      expect(list(statement.Action).every(isStreamAction)).toBe(true);
      for (const resource of list(statement.Resource)) {
        const text = arnText(resource);
        if (text !== '*') expect(text).toBe(`\${${table}.StreamArn}`);
      }
    }
    expect(streamStatements.length).toBeGreaterThan(0);
    for (const { statement } of tableStatements) {
      expect(list(statement.Resource).map(arnText)).toEqual([
        `\${${table}.Arn}`,
        `\${${table}.Arn}/index/gsi1`,
        `\${${table}.Arn}/index/gsi2`,
        `\${${table}.Arn}/index/gsi3`,
      ]);
      expect(list(statement.Action)).not.toContain('dynamodb:Scan');
      expect(list(statement.Action).some((a: string) => /Table|\*/.test(a))).toBe(false);
    }
  });

  it('lets the API manage tunnel secrets, the gateway only read and update them', () => {
    const tunnels = /:secret:tunnelkeeper\/tunnels\/\*$/;
    expect(actionsOn(policyOf(stack.api.fn.role as IConstruct), tunnels)).toEqual(
      [
        'secretsmanager:CreateSecret',
        'secretsmanager:DeleteSecret',
        'secretsmanager:GetSecretValue',
        'secretsmanager:PutSecretValue',
        'secretsmanager:RestoreSecret',
      ].sort(),
    );
    expect(actionsOn(policyOf(stack.gateway.taskDefinition.taskRole), tunnels)).toEqual(
      [
        'secretsmanager:CreateSecret',
        'secretsmanager:GetSecretValue',
        'secretsmanager:PutSecretValue',
      ].sort(),
    );
    expect(actionsOn(policyOf(stack.sweeper.fn.role as IConstruct), tunnels)).toEqual([]);
  });

  it('lets the API and the gateway read or first create the host key and control token, never overwrite them', () => {
    for (const role of [stack.api.fn.role as IConstruct, stack.gateway.taskDefinition.taskRole]) {
      for (const name of ['host-key', 'control-token']) {
        expect(actionsOn(policyOf(role), new RegExp(`/gateway/${name}-\\?{6}$`))).toEqual([
          'secretsmanager:CreateSecret',
          'secretsmanager:GetSecretValue',
        ]);
      }
    }
  });

  it('lets the API read or first create the alert channel key, the sweeper only read it, the gateway not at all', () => {
    const channelKey = /:secret:tunnelkeeper\/alerts\/channel-key-\?{6}$/;
    expect(actionsOn(policyOf(stack.api.fn.role as IConstruct), channelKey)).toEqual([
      'secretsmanager:CreateSecret',
      'secretsmanager:GetSecretValue',
    ]);
    expect(actionsOn(policyOf(stack.sweeper.fn.role as IConstruct), channelKey)).toEqual([
      'secretsmanager:GetSecretValue',
    ]);
    expect(actionsOn(policyOf(stack.gateway.taskDefinition.taskRole), /channel-key/)).toEqual([]);
    // One secret by name, no other: `-??????` is the suffix Secrets Manager adds to every name.
    const grants = iamStatements().filter(({ statement }) =>
      list(statement.Resource).some((r) => /channel-key/.test(arnText(r))),
    );
    expect(grants).toHaveLength(2);
    for (const { statement } of grants) expect(list(statement.Resource)).toHaveLength(1);
  });

  it('lets the sweeper read the alert channel key, publish to the alerts topic, and nothing else outside the table', () => {
    const statements = policyOf(stack.sweeper.fn.role as IConstruct).filter(
      (s) => !list(s.Action).some((a: string) => a.startsWith('dynamodb:')),
    );
    expect(statements).toEqual([
      expect.objectContaining({
        Action: 'secretsmanager:GetSecretValue',
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':secretsmanager:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':secret:tunnelkeeper/alerts/channel-key-??????',
            ],
          ],
        },
      }),
      expect.objectContaining({ Action: 'sns:Publish', Resource: ref(idOf(stack.alerts)) }),
      expect.objectContaining({
        Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
        Resource: getAtt(idOf(stack.alertsKey), 'Arn'),
      }),
    ]);
  });
});

describe('secrets', () => {
  it('generates the operator token under the prefix and outputs where it is', () => {
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Name: 'tunnelkeeper/admin/token',
      GenerateSecretString: Match.objectLike({ PasswordLength: 48, ExcludePunctuation: true }),
    });
    template.hasOutput('AdminTokenSecretName', Match.anyValue());
  });
});

describe('API', () => {
  it('runs the API Lambda on arm64 Node 22 in the private subnets with the bundle handler', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: Match.absent(),
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Timeout: 29,
      VpcConfig: {
        SecurityGroupIds: [getAtt(idOf(stack.network.apiSecurityGroup), 'GroupId')],
        SubnetIds: stack.network.vpc.privateSubnets.map((s) => ref(idOf(s))),
      },
      Environment: {
        Variables: Match.objectLike({
          TABLE_NAME: ref(idOf(stack.data.table)),
          SECRET_PREFIX: 'tunnelkeeper',
          PUBLIC_SSH_HOST: getAtt(idOf(stack.gateway.nlb), 'DNSName'),
          PUBLIC_SSH_PORT: '22',
        }),
      },
    });
  });

  it('writes the configured public SSH host name into customer commands', () => {
    const named = synthTemplate({ context: { publicSshHost: 'tunnels.example.com' } });
    named.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ PUBLIC_SSH_HOST: 'tunnels.example.com' }) },
    });
    named.template.hasOutput('SshEndpoint', { Value: 'tunnels.example.com:22' });
  });

  it('serves the HTTP API on the $default stage with throttling and JSON access logs without secrets', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP' });
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: '$default' });
    template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationType: 'AWS_PROXY',
      PayloadFormatVersion: '2.0',
      IntegrationUri: getAtt(idOf(stack.api.fn), 'Arn'),
    });
    template.resourceCountIs('AWS::ApiGatewayV2::Stage', 1);
    const [[, stage]] = ofType('AWS::ApiGatewayV2::Stage') as [[string, Json]];
    expect(stage.Properties).toMatchObject({
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
      AccessLogSettings: { DestinationArn: getAtt(idOf(stack.api.accessLogs), 'Arn') },
    });
    const format = JSON.parse(stage.Properties.AccessLogSettings.Format);
    expect(format).toMatchObject({ requestId: '$context.requestId', status: '$context.status' });
    expect(stage.Properties.AccessLogSettings.Format).not.toMatch(/header|authorization|requestBody/i);
  });
});

describe('sweeper', () => {
  it('runs every minute from EventBridge, without retries, publishing to the alerts topic', () => {
    const fn = idOf(stack.sweeper.fn);
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          Arn: getAtt(fn, 'Arn'),
          RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 0 }),
        }),
      ],
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: ref(fn),
      MaximumRetryAttempts: 0,
    });
    expect(resources[fn].Properties).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Timeout: 55,
    });
    expect(envOf(fn)).toMatchObject({ ALERT_TOPIC_ARN: ref(idOf(stack.alerts)), SWEEP_INTERVAL_MS: '60000' });
  });

  it("runs in the private subnets, so alert channels' sends leave through the egress IPs", () => {
    const fn = idOf(stack.sweeper.fn);
    const vpcConfig = resources[fn].Properties.VpcConfig;
    expect(vpcConfig.SubnetIds).toEqual(stack.network.vpc.privateSubnets.map((s) => ref(idOf(s))));
    const [group] = vpcConfig.SecurityGroupIds;
    const groupId = group['Fn::GetAtt'][0];
    // Outbound only: no ingress rule names it.
    expect(resources[groupId].Properties.SecurityGroupIngress).toBeUndefined();
    expect(resources[groupId].Properties.SecurityGroupEgress).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: '-1' }),
    ]);
  });
});

describe('gateway service', () => {
  it('runs at least two ARM64 Fargate tasks in the private subnets without public IPs', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: Match.anyValue(),
      NetworkConfiguration: {
        AwsvpcConfiguration: {
          AssignPublicIp: 'DISABLED',
          SecurityGroups: [getAtt(idOf(stack.network.gatewaySecurityGroup), 'GroupId')],
          Subnets: stack.network.vpc.privateSubnets.map((s) => ref(idOf(s))),
        },
      },
      LoadBalancers: [
        {
          ContainerName: 'gateway',
          ContainerPort: GATEWAY_SSH_PORT,
          TargetGroupArn: ref(idOf(stack.gateway.targetGroup)),
        },
      ],
      DeploymentConfiguration: Match.objectLike({
        MinimumHealthyPercent: 100,
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
      }),
    });
    const [[, service]] = ofType('AWS::ECS::Service') as [[string, Json]];
    expect(service.Properties.DesiredCount).toBeGreaterThanOrEqual(2);
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
    });
    template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
    });
  });

  it('gives the container a health check, time to hand over on SIGTERM, and a read-only root', () => {
    const [[, task]] = ofType('AWS::ECS::TaskDefinition') as [[string, Json]];
    const [container] = task.Properties.ContainerDefinitions;
    expect(container.StopTimeout).toBeGreaterThanOrEqual(60);
    expect(container.StopTimeout).toBeLessThanOrEqual(120); // Fargate's maximum
    expect(container.HealthCheck.Command.join(' ')).toContain(`http://127.0.0.1:${GATEWAY_HEALTH_PORT}/`);
    expect(container.ReadonlyRootFilesystem).toBe(true);
    expect(container.LogConfiguration.LogDriver).toBe('awslogs');
    expect(container.Image['Fn::Sub']).toMatch(/container-assets/);
  });

  it('configures the gateway the way fargate/main.ts reads it, learning its address from ECS', () => {
    const env = containerEnv();
    expect(env).toMatchObject({
      SSH_PORT: String(GATEWAY_SSH_PORT),
      HEALTH_PORT: String(GATEWAY_HEALTH_PORT),
      CONTROL_PORT: String(GATEWAY_CONTROL_PORT),
      ALLOW_PRIVATE_SSH_HOSTS: 'false',
      TABLE_NAME: ref(idOf(stack.data.table)),
    });
    expect(env.WORKER_ADDRESS).toBeUndefined();
    expect(env.TUNNEL_BIND_HOST).toBeUndefined();
  });
});

describe('configuration every runtime reads', () => {
  /** Replaces deploy-time tokens with values of their shape, then parses as the runtime would. */
  const runtimeParse = (env: Record<string, Json>) => {
    const concrete = Object.fromEntries(
      Object.entries(env).map(([key, value]) => {
        if (typeof value === 'string') return [key, value];
        if (key === 'ALERT_TOPIC_ARN') return [key, 'arn:aws:sns:eu-west-1:123456789012:Tunnelkeeper-Alerts'];
        if (key === 'AWS_REGION') return [key, 'eu-west-1'];
        if (key === 'EGRESS_IPS') return [key, '198.51.100.1,198.51.100.2'];
        if (key === 'CONNECT_HOSTS')
          return [
            key,
            stack.settings.connectBlocks.map((b, i) => `${b.from}-${b.to}=lb-${i}.internal`).join(','),
          ];
        return [key, `resolved-${key.toLowerCase()}`];
      }),
    );
    return parseEnv(concrete);
  };

  it.each([
    ['API', () => envOf(idOf(stack.api.fn))],
    ['sweeper', () => envOf(idOf(stack.sweeper.fn))],
    ['gateway', containerEnv],
  ])('the %s environment passes the runtime config parser', (_, env) => {
    expect(() => runtimeParse(env())).not.toThrow();
  });

  it('gives the API, the sweeper and the gateway the same table, prefix, port range and timing', () => {
    const shared = [
      'TABLE_NAME',
      'SECRET_PREFIX',
      'TUNNEL_PORT_RANGE',
      'HEARTBEAT_INTERVAL_MS',
      'SSH_KEEPALIVE_INTERVAL_MS',
      'DOWN_GRACE_MS',
    ];
    const pick = (env: Record<string, Json>) => Object.fromEntries(shared.map((k) => [k, env[k]]));
    const api = pick(envOf(idOf(stack.api.fn)));
    expect(Object.values(api).every((v) => v !== undefined)).toBe(true);
    expect(pick(envOf(idOf(stack.sweeper.fn)))).toEqual(api);
    expect(pick(containerEnv())).toEqual(api);
    expect(runtimeParse(api).TUNNEL_PORT_RANGE).toEqual(stack.settings.portRange);
  });
});

describe('alerts and alarms', () => {
  it('encrypts the alerts topic with a rotating key CloudWatch may use, and enforces TLS', () => {
    template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: getAtt(idOf(stack.alertsKey), 'Arn'),
    });
    template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
          }),
        ]),
      },
    });
    template.hasOutput('AlertsTopicArn', { Value: ref(idOf(stack.alerts)) });
  });

  it('subscribes the on-call email when one is configured, and none otherwise', () => {
    template.resourceCountIs('AWS::SNS::Subscription', 0);
    synthTemplate({ context: { alertEmail: 'oncall@example.com' } }).template.hasResourceProperties(
      'AWS::SNS::Subscription',
      { Protocol: 'email', Endpoint: 'oncall@example.com' },
    );
  });

  it('wires every alarm and its recovery to the alerts topic', () => {
    const alarms = ofType('AWS::CloudWatch::Alarm');
    expect(alarms.length).toBe(13);
    for (const [, alarm] of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([ref(idOf(stack.alerts))]);
      expect(alarm.Properties.OKActions).toEqual([ref(idOf(stack.alerts))]);
    }
  });

  const alarm = (name: string): Json => {
    const found = ofType('AWS::CloudWatch::Alarm').find(([id]) => id.startsWith(`Alarms${name}`));
    if (!found) throw new Error(`no alarm ${name}`);
    return found[1].Properties;
  };

  it.each<[string, Json]>([
    ['ApiServerErrors', { Namespace: 'AWS/ApiGateway', MetricName: '5xx' }],
    ['SweeperErrors', { Namespace: 'AWS/Lambda', MetricName: 'Errors' }],
    ['ConnectTargetsFailing', { Namespace: 'AWS/Lambda', MetricName: 'Errors' }],
    [
      'SweeperNotRunning',
      { Namespace: 'AWS/Lambda', MetricName: 'Invocations', TreatMissingData: 'breaching' },
    ],
    ['GatewayHeartbeatFailing', { Namespace: 'Tunnelkeeper', MetricName: 'GatewayHeartbeatFailures' }],
    [
      'GatewayWorkersDown',
      { Namespace: 'AWS/NetworkELB', MetricName: 'HealthyHostCount', TreatMissingData: 'breaching' },
    ],
  ])('alarms on %s', (name, expected) => {
    expect(alarm(name)).toMatchObject(expected);
  });

  it.each(['LambdaThrottles', 'DynamoDbThrottles'])('alarms on throttles: %s', (name) => {
    const metrics: Json[] = alarm(name).Metrics;
    const names = metrics.filter((m) => m.MetricStat).map((m) => m.MetricStat.Metric.MetricName);
    expect(names.length).toBe(2);
    expect(names.every((n: string) => /Throttle/.test(n))).toBe(true);
  });

  it.each([
    'AlertDeliveriesFailed',
    'SweepsSlow',
    'ManyTunnelsDown',
    'TunnelConnectionsSlow',
    'LoginsRefusedStorageUnavailable',
  ])('alarms on the operator metrics the gateway and the sweeper write: %s', async (name) => {
    // What the runtimes write (shared/metrics/emf.ts), from a registry with every series present.
    const { OperatorMetrics } = await import('../../../shared/metrics/operator-metrics');
    const { emfDocuments } = await import('../../../shared/metrics/emf');
    const metrics = new OperatorMetrics();
    metrics.sweepFinished({
      durationMs: 1,
      tunnels: [{ state: 'up', type: 'reverse', count: 1 }],
      deliveries: { delivered: 0, retrying: 0, failed: 0 },
      transitions: 0,
      errors: 0,
    });
    const families = await metrics.registry.getMetricsAsJSON();
    const written = new Set<string>();
    for (const service of ['gateway', 'sweeper'] as const) {
      for (const doc of emfDocuments(families, new Map(), service, 0)) {
        for (const directive of doc._aws.CloudWatchMetrics) {
          const dimensions = (directive.Dimensions[0] ?? []).map((d) => `${d}=${String(doc[d])}`).sort();
          for (const metric of directive.Metrics)
            written.add(`${directive.Namespace}/${metric.Name}{${dimensions.join(',')}}`);
        }
      }
    }
    const stats: Json[] = (alarm(name).Metrics ?? []).filter((m: Json) => m.MetricStat);
    const single = alarm(name).MetricName ? [alarm(name)] : [];
    const watched = [
      ...stats.map((m) => m.MetricStat.Metric),
      ...single.map((a) => ({ Namespace: a.Namespace, MetricName: a.MetricName, Dimensions: a.Dimensions })),
    ];
    expect(watched.length).toBeGreaterThan(0);
    for (const metric of watched) {
      const dims = (metric.Dimensions as { Name: string; Value: string }[])
        .map((d) => `${d.Name}=${d.Value}`)
        .sort();
      expect(written).toContain(`${metric.Namespace}/${metric.MetricName}{${dims.join(',')}}`);
    }
  });

  it("counts the gateway's heartbeat failures from its log, with the message the gateway writes", async () => {
    template.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: ref(idOf(stack.gateway.logGroup)),
      FilterPattern: `{ $.msg = "${HEARTBEAT_FAILED_MESSAGE}" }`,
      MetricTransformations: [Match.objectLike({ MetricName: 'GatewayHeartbeatFailures', MetricValue: '1' })],
    });
    const { readFile } = await import('node:fs/promises');
    const source = await readFile(new URL('../../../fargate/gateway.ts', import.meta.url), 'utf8');
    expect(source).toContain(`logger.error('${HEARTBEAT_FAILED_MESSAGE}'`);
  });
});

describe('logs and outputs', () => {
  it('keeps every log group for a bounded time', () => {
    const groups = ofType('AWS::Logs::LogGroup');
    expect(groups.length).toBe(6); // API, API access, sweeper, connect targets, gateway, flow logs
    for (const [, group] of groups) expect(group.Properties.RetentionInDays).toBeGreaterThan(0);
  });

  it('outputs what operators and customers need', () => {
    const outputs = Object.keys(template.toJSON().Outputs);
    expect(outputs).toEqual(
      expect.arrayContaining([
        'ApiUrl',
        'SshEndpoint',
        'NlbDnsName',
        'EgressIps',
        'PlatformSecurityGroupId',
        'ConnectHosts',
        'VpcId',
        'AlertsTopicArn',
        'AdminTokenSecretName',
      ]),
    );
    template.hasOutput('SshEndpoint', {
      Value: { 'Fn::Join': ['', [getAtt(idOf(stack.gateway.nlb), 'DNSName'), ':22']] },
    });
  });
});

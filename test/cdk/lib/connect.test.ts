/**
 * The stable `connect` address (issue 17, acceptance 5): internal load balancers over every gateway
 * task whose listeners cover exactly the tunnel port range, one per port, health-checked per port,
 * their targets kept by the connect-targets Lambda, and their names handed to the API as
 * `CONNECT_HOSTS`. Who may reach them is asserted with the rest of the exposure in
 * tunnelkeeper-stack.test.ts.
 */
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CONNECT_TAG_KEY } from '../../../cdk/lib/connect';
import { MAX_LISTENERS_PER_NLB, MAX_TARGETS_PER_NLB } from '../../../cdk/lib/connect-blocks';
import { GATEWAY_HEALTH_PORT } from '../../../cdk/lib/ports';
import type { TunnelkeeperStack } from '../../../cdk/lib/tunnelkeeper-stack';
import { parseConnectHosts } from '../../../shared/connect-hosts';
import { getAtt, ref, synthTemplate } from '../../helpers/cdk';

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON is untyped
type Json = any;

let stack: TunnelkeeperStack;
let template: Template;
/** Each connect load balancer's nested stack: its template and its logical id in the parent. */
let nested: { template: Json; parentId: string; nlbId: string }[];

const idOf = (construct: IConstruct): string => {
  const child = construct.node.defaultChild ?? construct;
  return Stack.of(construct).getLogicalId(child as CfnElement);
};
const ofType = (json: Json, type: string): [string, Json][] =>
  Object.entries<Json>(json.Resources).filter(([, r]) => r.Type === type);

beforeAll(() => {
  ({ stack, template } = synthTemplate());
  nested = stack.connect.loadBalancers.map(({ nlb }) => {
    const nestedStack = Stack.of(nlb);
    return {
      template: Template.fromStack(nestedStack).toJSON(),
      parentId: idOf(nestedStack),
      nlbId: idOf(nlb),
    };
  });
});

/** What a `{"Fn::GetAtt": [nestedStack, "Outputs.X"]}` in the parent stands for in the nested stack. */
function throughOutput(value: Json): Json {
  const [stackId, attribute] = value['Fn::GetAtt'] ?? [];
  const found = nested.find((n) => n.parentId === stackId);
  if (!found || !String(attribute).startsWith('Outputs.')) return value;
  return { nested: stackId, value: found.template.Outputs[String(attribute).slice('Outputs.'.length)].Value };
}

describe('connect load balancers', () => {
  it('are internal network load balancers in the private subnets, cross-zone, behind the connect security group', () => {
    expect(nested).toHaveLength(stack.settings.connectBlocks.length);
    expect(nested.length).toBeGreaterThan(0);
    for (const { template: json } of nested) {
      const loadBalancers = ofType(json, 'AWS::ElasticLoadBalancingV2::LoadBalancer');
      expect(loadBalancers).toHaveLength(1);
      const [, nlb] = loadBalancers[0] ?? [];
      expect(nlb.Properties).toMatchObject({ Type: 'network', Scheme: 'internal' });
      expect(nlb.Properties.Subnets).toHaveLength(2);
      expect(nlb.Properties.SecurityGroups).toHaveLength(1);
      expect(nlb.Properties.LoadBalancerAttributes).toContainEqual({
        Key: 'load_balancing.cross_zone.enabled',
        Value: 'true',
      });
    }
    // Passed down from the parent: the connect group and the private subnets.
    const parameters = nested.map(
      ({ parentId }) => template.toJSON().Resources[parentId].Properties.Parameters,
    );
    for (const params of parameters) {
      const values = Object.values<Json>(params).map((v) => JSON.stringify(v));
      expect(values).toContain(JSON.stringify(getAtt(idOf(stack.network.connectSecurityGroup), 'GroupId')));
      for (const subnet of stack.network.vpc.privateSubnets)
        expect(values).toContain(JSON.stringify(ref(idOf(subnet))));
    }
  });

  it('listen on exactly the tunnel port range, one TCP listener per port, at most 50 per load balancer', () => {
    const { from, to } = stack.settings.portRange;
    const ports: number[] = [];
    for (const { template: json } of nested) {
      const listeners = ofType(json, 'AWS::ElasticLoadBalancingV2::Listener');
      expect(listeners.length).toBeLessThanOrEqual(MAX_LISTENERS_PER_NLB);
      for (const [, listener] of listeners) {
        expect(listener.Properties.Protocol).toBe('TCP');
        ports.push(listener.Properties.Port);
      }
    }
    expect(ports).toEqual(Array.from({ length: to - from + 1 }, (_, i) => from + i));
  });

  it("forward each port to that port's target group of gateway tasks by address, health-checked per port", () => {
    for (const { template: json } of nested) {
      const groups = Object.fromEntries(ofType(json, 'AWS::ElasticLoadBalancingV2::TargetGroup'));
      for (const [, listener] of ofType(json, 'AWS::ElasticLoadBalancingV2::Listener')) {
        const port = listener.Properties.Port;
        const [action] = listener.Properties.DefaultActions;
        expect(action.Type).toBe('forward');
        const group = groups[action.TargetGroupArn.Ref];
        expect(group.Properties).toMatchObject({
          Port: port,
          Protocol: 'TCP',
          TargetType: 'ip',
          HealthCheckProtocol: 'HTTP',
          HealthCheckPort: String(GATEWAY_HEALTH_PORT),
          HealthCheckPath: `/ports/${port}`,
          HealthyThresholdCount: 2,
          UnhealthyThresholdCount: 2,
        });
        // Registered by the connect-targets Lambda, never by CloudFormation.
        expect(group.Properties.Targets).toBeUndefined();
        expect(group.Properties.TargetGroupAttributes).toEqual(
          expect.arrayContaining([
            { Key: 'preserve_client_ip.enabled', Value: 'true' },
            { Key: 'deregistration_delay.timeout_seconds', Value: '30' },
          ]),
        );
        expect(group.Properties.Tags).toContainEqual({ Key: CONNECT_TAG_KEY, Value: stack.connect.tagValue });
      }
      expect(Object.keys(groups)).toHaveLength(ofType(json, 'AWS::ElasticLoadBalancingV2::Listener').length);
    }
  });

  it('fit the quotas: at most 500 resources per template, 500 targets per load balancer while a deploy doubles the tasks', () => {
    for (const { template: json } of nested) {
      expect(Object.keys(json.Resources).length).toBeLessThanOrEqual(500);
      const groups = ofType(json, 'AWS::ElasticLoadBalancingV2::TargetGroup').length;
      expect(groups * 2 * stack.settings.gatewayTaskCount).toBeLessThanOrEqual(MAX_TARGETS_PER_NLB);
    }
    expect(Object.keys(template.toJSON().Resources).length).toBeLessThanOrEqual(500);
  });

  it.each([
    ['the default range', {}, 100, 2],
    ['ten gateway tasks: 25 ports a load balancer', { gatewayTaskCount: 10 }, 100, 4],
    ['a range of one port', { tunnelPortRange: '20000-20000' }, 1, 1],
  ])('cuts %s into as many load balancers as the quotas need', (_, context, ports, loadBalancers) => {
    const built = synthTemplate({ context }).stack;
    expect(built.connect.loadBalancers).toHaveLength(loadBalancers);
    const listened = built.connect.loadBalancers.flatMap(({ targetGroups }) => targetGroups).length;
    expect(listened).toBe(ports);
  });
});

describe('the stable connect host', () => {
  it("gives the API each block of ports with its load balancer's DNS name, covering the whole range", () => {
    const api = template.toJSON().Resources[idOf(stack.api.fn)].Properties.Environment.Variables;
    const joined = api.CONNECT_HOSTS['Fn::Join'];
    expect(joined[0]).toBe(',');
    const entries = joined[1].map((entry: Json) => {
      const [separator, [prefix, dns]] = entry['Fn::Join'];
      expect(separator).toBe('');
      return { prefix, dns: throughOutput(dns) };
    });
    expect(entries).toEqual(
      stack.settings.connectBlocks.map((block, i) => ({
        prefix: `${block.from}-${block.to}=`,
        dns: { nested: nested[i]?.parentId, value: getAtt(nested[i]?.nlbId ?? '', 'DNSName') },
      })),
    );
    // What the API parses: one host per block, every tunnel port covered.
    const text = entries.map((e: Json, i: number) => `${e.prefix}lb-${i}.internal`).join(',');
    const parsed = parseConnectHosts(text);
    expect('blocks' in parsed && parsed.blocks.map((b) => [b.from, b.to])).toEqual(
      stack.settings.connectBlocks.map((b) => [b.from, b.to]),
    );
    template.hasOutput('ConnectHosts', { Value: api.CONNECT_HOSTS });
  });

  it("leaves the gateway on its own address: its control endpoint, heartbeats and relays are the task's", () => {
    const [[, task]] = ofType(template.toJSON(), 'AWS::ECS::TaskDefinition') as [[string, Json]];
    const names = task.Properties.ContainerDefinitions[0].Environment.map((e: Json) => e.Name);
    expect(names).not.toContain('CONNECT_HOSTS');
    expect(names).not.toContain('WORKER_ADDRESS');
  });
});

describe('connect-targets Lambda', () => {
  const fnResource = () => template.toJSON().Resources[idOf(stack.connectTargets.fn)];

  it('mirrors the gateway target group ECS keeps into the connect load balancers, one run at a time', () => {
    const fn = fnResource();
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      ReservedConcurrentExecutions: 1,
    });
    const env = fn.Properties.Environment.Variables;
    expect(env.GATEWAY_TARGET_GROUP_ARN).toEqual(ref(idOf(stack.gateway.targetGroup)));
    const arns = env.CONNECT_LOAD_BALANCER_ARNS['Fn::Join'];
    expect(arns[0]).toBe('');
    const named = arns[1].filter((part: Json) => part !== ',').map(throughOutput);
    expect(named).toEqual(nested.map(({ parentId, nlbId }) => ({ nested: parentId, value: ref(nlbId) })));
  });

  it('runs on every state change of a gateway task and once a minute', () => {
    const rules = ofType(template.toJSON(), 'AWS::Events::Rule').filter(([, rule]) =>
      rule.Properties.Targets.some(
        (t: Json) => JSON.stringify(t.Arn) === JSON.stringify(getAtt(idOf(stack.connectTargets.fn), 'Arn')),
      ),
    );
    const pattern = rules.map(([, r]) => r.Properties.EventPattern).find(Boolean);
    expect(pattern).toEqual({
      source: ['aws.ecs'],
      'detail-type': ['ECS Task State Change'],
      detail: {
        clusterArn: [getAtt(idOf(stack.gateway.cluster), 'Arn')],
        group: [{ 'Fn::Join': ['', ['service:', getAtt(idOf(stack.gateway.service), 'Name')]] }],
      },
    });
    expect(rules.map(([, r]) => r.Properties.ScheduleExpression).filter(Boolean)).toEqual(['rate(1 minute)']);
  });

  it('may change the targets of the tagged connect target groups only, and only read the rest', () => {
    const role = fnResource().Properties.Role['Fn::GetAtt'][0];
    const statements = ofType(template.toJSON(), 'AWS::IAM::Policy')
      .filter(([, p]) => p.Properties.Roles.some((r: Json) => r.Ref === role))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
    expect(statements).toEqual([
      {
        Effect: 'Allow',
        Action: ['elasticloadbalancing:DescribeTargetGroups', 'elasticloadbalancing:DescribeTargetHealth'],
        Resource: '*',
      },
      {
        Effect: 'Allow',
        Action: ['elasticloadbalancing:RegisterTargets', 'elasticloadbalancing:DeregisterTargets'],
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':elasticloadbalancing:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':targetgroup/*/*',
            ],
          ],
        },
        Condition: { StringEquals: { [`aws:ResourceTag/${CONNECT_TAG_KEY}`]: stack.connect.tagValue } },
      },
    ]);
  });

  it('raises an alarm when it keeps failing', () => {
    const [, alarm] =
      ofType(template.toJSON(), 'AWS::CloudWatch::Alarm').find(([id]) =>
        id.startsWith('AlarmsConnectTargetsFailing'),
      ) ?? [];
    expect(alarm?.Properties).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: ref(idOf(stack.connectTargets.fn)) }],
      EvaluationPeriods: 3,
    });
  });
});

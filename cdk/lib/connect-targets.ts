/**
 * The connect-targets Lambda (lambda/connect-targets/): keeps every connect load balancer's
 * target groups holding exactly the gateway tasks, which ECS cannot do for more than five target
 * groups per service. Run by every state change of a gateway task (so a stopping task leaves the
 * connect load balancers while the public one drains it, ahead of its SIGTERM) and once a minute
 * for anything missed. One invocation at a time: an older view never undoes a newer one.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import type { ICluster, IService } from 'aws-cdk-lib/aws-ecs';
import type { INetworkTargetGroup } from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import { CONNECT_TAG_KEY, type Connect } from './connect';
import { tunnelkeeperFunction } from './lambda-function';

export const CONNECT_TARGETS_INTERVAL = Duration.minutes(1);

export interface ConnectTargetsProps {
  connect: Connect;
  /** The gateway service, its cluster and its own (ECS-kept) target group. */
  cluster: ICluster;
  service: IService;
  gatewayTargetGroup: INetworkTargetGroup;
  logLevel: string;
}

export class ConnectTargets extends Construct {
  readonly fn: NodejsFunction;
  readonly taskChanges: Rule;
  readonly schedule: Rule;

  constructor(scope: Construct, id: string, props: ConnectTargetsProps) {
    super(scope, id);
    const { connect } = props;
    this.fn = tunnelkeeperFunction(this, 'Function', {
      bundle: 'connect-targets',
      description: 'Tunnelkeeper: registers the gateway tasks in the connect load balancers',
      environment: {
        LOG_LEVEL: props.logLevel,
        GATEWAY_TARGET_GROUP_ARN: props.gatewayTargetGroup.targetGroupArn,
        CONNECT_LOAD_BALANCER_ARNS: connect.loadBalancers.map((lb) => lb.nlb.loadBalancerArn).join(','),
      },
      memorySize: 256,
      timeout: Duration.seconds(60),
      retryAttempts: 2,
      reservedConcurrentExecutions: 1,
    }).fn;
    // Describe calls take no resource-level permission; changes only on target groups tagged as ours.
    this.fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['elasticloadbalancing:DescribeTargetGroups', 'elasticloadbalancing:DescribeTargetHealth'],
        resources: ['*'],
      }),
    );
    const { partition, region, account } = Stack.of(this);
    this.fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['elasticloadbalancing:RegisterTargets', 'elasticloadbalancing:DeregisterTargets'],
        resources: [`arn:${partition}:elasticloadbalancing:${region}:${account}:targetgroup/*/*`],
        conditions: { StringEquals: { [`aws:ResourceTag/${CONNECT_TAG_KEY}`]: connect.tagValue } },
      }),
    );

    this.taskChanges = new Rule(this, 'TaskChanges', {
      description: 'Tunnelkeeper: a gateway task started or is stopping',
      eventPattern: {
        source: ['aws.ecs'],
        detailType: ['ECS Task State Change'],
        detail: {
          clusterArn: [props.cluster.clusterArn],
          group: [`service:${props.service.serviceName}`],
        },
      },
      targets: [new LambdaFunction(this.fn, { retryAttempts: 2, maxEventAge: Duration.minutes(10) })],
    });
    this.schedule = new Rule(this, 'Schedule', {
      description: 'Tunnelkeeper: connect load balancer targets checked once a minute',
      schedule: Schedule.rate(CONNECT_TARGETS_INTERVAL),
      targets: [new LambdaFunction(this.fn, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
    });
  }
}

/**
 * The stable `connect` address of every tunnel: internal Network Load Balancers in the private
 * subnets, one per block of the tunnel port range (connect-blocks.ts), each with one TCP listener
 * per port forwarding to that port's target group of every gateway task. Whichever gateway
 * carries a tunnel, the platform reaches it at the same `<load balancer DNS name>:<port>`
 * (`CONNECT_HOSTS` tells the API which name serves which ports).
 *
 * - Reachable from the platform's security group only: the load balancers have a security group
 *   of their own (network.ts), and the tasks accept the tunnel ports from that group alone.
 * - Each port's health check asks the gateway's health port whether the task listens on that
 *   port (`/ports/<port>`, fargate/health-endpoint.ts): a reverse tunnel is served by every
 *   gateway (they relay to the one that carries it), a standard tunnel by its lease holder only,
 *   so the load balancer routes each port where it is served.
 * - Client IP preservation stays on: the gateway hands the platform client's address to the
 *   customer's side as the connection's origin, as it does without a load balancer.
 * - ECS registers a service's tasks in at most five target groups; the connect-targets Lambda
 *   (connect-targets.ts) keeps these target groups holding the tasks instead.
 * - One nested stack per load balancer: 50 listeners and 50 target groups are 101 resources, and a
 *   CloudFormation template holds at most 500.
 */
import { Duration, Fn, Names, NestedStack, Tags } from 'aws-cdk-lib';
import { type ISecurityGroup, type IVpc, SubnetType } from 'aws-cdk-lib/aws-ec2';
import {
  NetworkLoadBalancer,
  NetworkTargetGroup,
  Protocol,
  TargetType,
} from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Construct } from 'constructs';
import type { PortBlock } from './connect-blocks';
import { GATEWAY_HEALTH_PORT } from './ports';

/** Tag on every connect target group: the connect-targets Lambda may change only those. */
export const CONNECT_TAG_KEY = 'tunnelkeeper-connect';

/** The gateway's per-port health path (fargate/health-endpoint.ts). */
export const portHealthPath = (port: number) => `/ports/${port}`;

export interface ConnectProps {
  blocks: readonly PortBlock[];
  vpc: IVpc;
  securityGroup: ISecurityGroup;
}

export interface ConnectLoadBalancer {
  block: PortBlock;
  nlb: NetworkLoadBalancer;
  targetGroups: NetworkTargetGroup[];
}

export class Connect extends Construct {
  readonly loadBalancers: ConnectLoadBalancer[];
  /** The value of `CONNECT_TAG_KEY` on this stack's connect target groups. */
  readonly tagValue: string;
  /** `CONNECT_HOSTS` for the API: each block with its load balancer's DNS name. */
  readonly connectHosts: string;

  constructor(scope: Construct, id: string, props: ConnectProps) {
    super(scope, id);
    this.tagValue = Names.uniqueId(this);
    this.loadBalancers = props.blocks.map((block, i) => this.loadBalancer(`Lb${i + 1}`, block, props));
    this.connectHosts = Fn.join(
      ',',
      this.loadBalancers.map(({ block, nlb }) => `${block.from}-${block.to}=${nlb.loadBalancerDnsName}`),
    );
  }

  private loadBalancer(id: string, block: PortBlock, props: ConnectProps): ConnectLoadBalancer {
    const stack = new NestedStack(this, id, {
      description: `Tunnelkeeper connect load balancer: tunnel ports ${block.from}-${block.to}`,
    });
    const nlb = new NetworkLoadBalancer(stack, 'Nlb', {
      vpc: props.vpc,
      internetFacing: false,
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [props.securityGroup],
      // A standard tunnel is served by one task, in one zone: every zone's node must reach it.
      crossZoneEnabled: true,
    });
    const targetGroups: NetworkTargetGroup[] = [];
    for (let port = block.from; port <= block.to; port++) {
      const targetGroup = new NetworkTargetGroup(stack, `Port${port}`, {
        vpc: props.vpc,
        port,
        protocol: Protocol.TCP,
        targetType: TargetType.IP,
        preserveClientIp: true,
        // A stopping gateway ends its connections itself (SHUTDOWN_DRAIN_MS), well inside this.
        deregistrationDelay: Duration.seconds(30),
        healthCheck: {
          protocol: Protocol.HTTP,
          port: String(GATEWAY_HEALTH_PORT),
          path: portHealthPath(port),
          interval: Duration.seconds(10),
          healthyThresholdCount: 2,
          unhealthyThresholdCount: 2,
        },
      });
      Tags.of(targetGroup).add(CONNECT_TAG_KEY, this.tagValue);
      nlb.addListener(`Port${port}`, { port, protocol: Protocol.TCP, defaultTargetGroups: [targetGroup] });
      targetGroups.push(targetGroup);
    }
    return { block, nlb, targetGroups };
  }
}

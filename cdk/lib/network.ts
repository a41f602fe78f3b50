/**
 * The network: a VPC over two AZs whose private subnets leave through NAT gateways on Elastic IPs
 * (the static egress IPs customers allowlist on their bastions), and the security groups that
 * decide who reaches the gateway tasks:
 * - the NLB's group is the only public ingress: TCP 22 from anywhere;
 * - the internal connect load balancers' group accepts the tunnel port range from the platform's
 *   group only, and may reach the gateway tasks on those ports and the health port only;
 * - the gateway tasks accept the SSH and health ports from the NLB's group, the tunnel port range
 *   and the health port from the connect load balancers' group (rules on the load balancers'
 *   groups, which hold with client IP preservation on), nothing from anywhere else;
 * - the gateway's control port accepts the API Lambda's group and the gateway tasks' own;
 * - the platform's group is what the platform's workloads attach to reach `connect.host:port`.
 */
import { RemovalPolicy, Tags } from 'aws-cdk-lib';
import {
  CfnEIP,
  FlowLogDestination,
  FlowLogTrafficType,
  GatewayVpcEndpointAwsService,
  NatProvider,
  Peer,
  Port,
  SecurityGroup,
  SubnetType,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { GATEWAY_CONTROL_PORT, GATEWAY_HEALTH_PORT, GATEWAY_SSH_PORT, PUBLIC_SSH_PORT } from './ports';
import { AZ_COUNT, type Settings } from './settings';

export interface NetworkProps {
  settings: Settings;
}

export class Network extends Construct {
  readonly vpc: Vpc;
  /** The NAT gateways' Elastic IPs: allocated here, or given by `egressEipAllocationIds`. */
  readonly egressIps: CfnEIP[];
  /** Their public addresses (tokens for those allocated here; `egressIps` from context for given ones). */
  readonly egressAddresses: string[];
  readonly nlbSecurityGroup: SecurityGroup;
  /** The internal connect load balancers' (connect.ts). */
  readonly connectSecurityGroup: SecurityGroup;
  readonly gatewaySecurityGroup: SecurityGroup;
  readonly platformSecurityGroup: SecurityGroup;
  readonly apiSecurityGroup: SecurityGroup;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    const { settings } = props;

    // Retained with the stack's deletion: customers' allowlists keep naming these addresses, and
    // their allocation ids can be handed to a new stack through `egressEipAllocationIds`.
    this.egressIps = settings.egressEipAllocationIds
      ? []
      : Array.from({ length: AZ_COUNT }, (_, i) => {
          const eip = new CfnEIP(this, `EgressIp${i + 1}`, { domain: 'vpc' });
          eip.applyRemovalPolicy(RemovalPolicy.RETAIN);
          Tags.of(eip).add('Name', `tunnelkeeper-egress-${i + 1}`);
          return eip;
        });
    const allocationIds =
      settings.egressEipAllocationIds ?? this.egressIps.map((eip) => eip.attrAllocationId);
    // An EIP's `Ref` is its address.
    this.egressAddresses = settings.egressIps ?? this.egressIps.map((eip) => eip.ref);

    const flowLogs = new LogGroup(this, 'FlowLogs', {
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc = new Vpc(this, 'Vpc', {
      maxAzs: AZ_COUNT,
      natGateways: AZ_COUNT,
      natGatewayProvider: NatProvider.gateway({ eipAllocationIds: allocationIds }),
      subnetConfiguration: [
        { name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 24 },
        // Gateway tasks and the API Lambda: every outbound connection leaves through the EIPs.
        { name: 'private', subnetType: SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      flowLogs: {
        all: {
          destination: FlowLogDestination.toCloudWatchLogs(flowLogs),
          trafficType: FlowLogTrafficType.ALL,
        },
      },
    });
    // DynamoDB traffic (heartbeats, state) stays on AWS's network instead of paying for the NAT.
    this.vpc.addGatewayEndpoint('DynamoDb', { service: GatewayVpcEndpointAwsService.DYNAMODB });

    this.nlbSecurityGroup = new SecurityGroup(this, 'NlbSecurityGroup', {
      vpc: this.vpc,
      description: 'Tunnelkeeper NLB: the public reverse-tunnel SSH endpoint',
      allowAllOutbound: false,
    });
    this.nlbSecurityGroup.addIngressRule(
      Peer.anyIpv4(),
      Port.tcp(PUBLIC_SSH_PORT),
      'customers ssh -R from anywhere (public-key auth only)',
    );

    this.gatewaySecurityGroup = new SecurityGroup(this, 'GatewaySecurityGroup', {
      vpc: this.vpc,
      description: 'Tunnelkeeper gateway tasks',
      // Standard tunnels reach customers' bastions on whatever port they run SSH on.
      allowAllOutbound: true,
    });
    this.gatewaySecurityGroup.connections.allowFrom(
      this.nlbSecurityGroup,
      Port.tcp(GATEWAY_SSH_PORT),
      'reverse-tunnel SSH through the NLB',
    );
    this.gatewaySecurityGroup.connections.allowFrom(
      this.nlbSecurityGroup,
      Port.tcp(GATEWAY_HEALTH_PORT),
      'NLB health checks',
    );

    this.platformSecurityGroup = new SecurityGroup(this, 'PlatformSecurityGroup', {
      vpc: this.vpc,
      description: 'Tunnelkeeper platform workloads: attach to reach the tunnel ports (connect.host:port)',
      allowAllOutbound: true,
    });
    const { from, to } = settings.portRange;
    const tunnelPorts = Port.tcpRange(from, to);
    this.connectSecurityGroup = new SecurityGroup(this, 'ConnectSecurityGroup', {
      vpc: this.vpc,
      description: 'Tunnelkeeper connect load balancers: the tunnel ports, for platform workloads only',
      allowAllOutbound: false,
    });
    this.connectSecurityGroup.addIngressRule(
      this.platformSecurityGroup,
      tunnelPorts,
      'connect.host:port, from platform workloads only',
    );
    // Each rule also opens the connect group's way out to the tasks (health checks obey egress rules).
    this.gatewaySecurityGroup.connections.allowFrom(
      this.connectSecurityGroup,
      tunnelPorts,
      'tunnel listeners, through the connect load balancers only',
    );
    this.gatewaySecurityGroup.connections.allowFrom(
      this.connectSecurityGroup,
      Port.tcp(GATEWAY_HEALTH_PORT),
      'connect load balancers: per-port health checks',
    );

    this.apiSecurityGroup = new SecurityGroup(this, 'ApiSecurityGroup', {
      vpc: this.vpc,
      description: 'Tunnelkeeper API Lambda: outbound only',
      allowAllOutbound: true,
    });
    this.gatewaySecurityGroup.addIngressRule(
      this.apiSecurityGroup,
      Port.tcp(GATEWAY_CONTROL_PORT),
      'control endpoint (tunnel tests), from the API only',
    );
    // Gateways relay platform connections to the task that carries the tunnel (fargate/peers/).
    this.gatewaySecurityGroup.addIngressRule(
      this.gatewaySecurityGroup,
      Port.tcp(GATEWAY_CONTROL_PORT),
      'relays between gateway tasks (control endpoint, behind the control token)',
    );
  }
}

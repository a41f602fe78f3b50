/**
 * The gateway fleet: ARM64 Fargate tasks from `fargate/Dockerfile` (built by `cdk deploy`, never
 * at synth) in the private subnets, behind a public NLB that maps TCP 22 to the container's SSH
 * port and health-checks the separate health port. Client IP preservation is on, so the gateway's
 * per-source login limits see customers' addresses rather than the NLB's.
 */
import { Duration, IgnoreMode, RemovalPolicy } from 'aws-cdk-lib';
import { type ISecurityGroup, type IVpc, SubnetType } from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import {
  Cluster,
  ContainerImage,
  ContainerInsights,
  CpuArchitecture,
  FargateService,
  FargateTaskDefinition,
  LogDrivers,
  OperatingSystemFamily,
  UlimitName,
} from 'aws-cdk-lib/aws-ecs';
import {
  NetworkLoadBalancer,
  type NetworkTargetGroup,
  Protocol,
} from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { REPO_ROOT } from './bundles';
import type { Data } from './data';
import { GATEWAY_CONTROL_PORT, GATEWAY_HEALTH_PORT, GATEWAY_SSH_PORT, PUBLIC_SSH_PORT } from './ports';
import type { Settings } from './settings';

export const GATEWAY_CONTAINER = 'gateway';
/**
 * On SIGTERM the gateway closes its sessions, writes their state and releases its standard-tunnel
 * leases so other tasks take them over at once; Fargate's maximum leaves the most room for that.
 */
export const GATEWAY_STOP_TIMEOUT = Duration.seconds(120);

export interface GatewayProps {
  settings: Settings;
  data: Data;
  runtimeEnv: Record<string, string>;
  region: string;
  vpc: IVpc;
  taskSecurityGroup: ISecurityGroup;
  nlbSecurityGroup: ISecurityGroup;
}

export class Gateway extends Construct {
  readonly cluster: Cluster;
  readonly taskDefinition: FargateTaskDefinition;
  readonly service: FargateService;
  readonly nlb: NetworkLoadBalancer;
  readonly targetGroup: NetworkTargetGroup;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: GatewayProps) {
    super(scope, id);
    const { settings, data } = props;

    this.cluster = new Cluster(this, 'Cluster', {
      vpc: props.vpc,
      containerInsightsV2: ContainerInsights.ENABLED,
    });
    this.taskDefinition = new FargateTaskDefinition(this, 'Task', {
      cpu: settings.gatewayCpu,
      memoryLimitMiB: settings.gatewayMemoryMiB,
      runtimePlatform: {
        cpuArchitecture: CpuArchitecture.ARM64,
        operatingSystemFamily: OperatingSystemFamily.LINUX,
      },
    });
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const container = this.taskDefinition.addContainer(GATEWAY_CONTAINER, {
      image: ContainerImage.fromAsset(REPO_ROOT, {
        file: 'fargate/Dockerfile',
        platform: Platform.LINUX_ARM64,
        ignoreMode: IgnoreMode.DOCKER,
      }),
      essential: true,
      environment: {
        ...props.runtimeEnv,
        AWS_REGION: props.region,
        SSH_PORT: String(GATEWAY_SSH_PORT),
        HEALTH_PORT: String(GATEWAY_HEALTH_PORT),
        // Fixed, so the security group can open it to the API Lambda alone.
        CONTROL_PORT: String(GATEWAY_CONTROL_PORT),
        // Standard tunnels may not target private or metadata addresses from inside our VPC.
        ALLOW_PRIVATE_SSH_HOSTS: 'false',
        // WORKER_ADDRESS stays unset: the task learns its VPC address from ECS_CONTAINER_METADATA_URI_V4.
      },
      portMappings: [{ containerPort: GATEWAY_SSH_PORT }, { containerPort: GATEWAY_HEALTH_PORT }],
      logging: LogDrivers.awsLogs({ streamPrefix: 'gateway', logGroup: this.logGroup }),
      stopTimeout: GATEWAY_STOP_TIMEOUT,
      readonlyRootFilesystem: true,
      // One descriptor per customer session, per listener and per forwarded connection.
      ulimits: [{ name: UlimitName.NOFILE, softLimit: 65_536, hardLimit: 65_536 }],
      healthCheck: {
        // The slim image has no curl; node's fetch asks the same endpoint the NLB checks.
        command: [
          'CMD',
          'node',
          '-e',
          `fetch('http://127.0.0.1:${GATEWAY_HEALTH_PORT}/').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`,
        ],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
    });
    data.grantTable(this.taskDefinition.taskRole);
    data.grantTunnelSecrets(this.taskDefinition.taskRole, 'read-write');
    data.grantSharedSecrets(this.taskDefinition.taskRole);
    // GET /metrics on the control port takes the operator token, as the API's operator routes do.
    data.adminToken.grantRead(this.taskDefinition.taskRole);

    this.service = new FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: settings.gatewayTaskCount,
      // Replace tasks one at a time without dropping below the desired count.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [props.taskSecurityGroup],
      assignPublicIp: false,
      healthCheckGracePeriod: Duration.seconds(60),
    });

    this.nlb = new NetworkLoadBalancer(this, 'Nlb', {
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
      securityGroups: [props.nlbSecurityGroup],
      crossZoneEnabled: true,
    });
    const listener = this.nlb.addListener('Ssh', { port: PUBLIC_SSH_PORT, protocol: Protocol.TCP });
    this.targetGroup = listener.addTargets('Gateway', {
      port: GATEWAY_SSH_PORT,
      protocol: Protocol.TCP,
      targets: [
        this.service.loadBalancerTarget({
          containerName: container.containerName,
          containerPort: GATEWAY_SSH_PORT,
        }),
      ],
      preserveClientIp: true,
      // Sessions are long-lived and autossh reconnects: a draining task closes them after 30 s
      // rather than holding a deploy for the default 5 minutes.
      deregistrationDelay: Duration.seconds(30),
      healthCheck: {
        protocol: Protocol.HTTP,
        port: String(GATEWAY_HEALTH_PORT),
        path: '/',
        interval: Duration.seconds(10),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 2,
      },
    });
    this.targetGroup.setAttribute('deregistration_delay.connection_termination.enabled', 'true');
  }
}

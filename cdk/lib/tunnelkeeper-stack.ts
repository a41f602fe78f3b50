/**
 * Tunnelkeeper on AWS, as DESIGN.md draws it: the HTTP API on Lambda, the gateway on Fargate behind
 * a public NLB, the sweeper on a schedule, one DynamoDB table, secrets in Secrets Manager, alerts
 * and alarms on one SNS topic; the platform reaches every tunnel through internal load balancers
 * over all gateway tasks (connect.ts). The stack is environment-agnostic, so it synthesises offline.
 */
import { CfnOutput, Fn, Stack, type StackProps } from 'aws-cdk-lib';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';
import { Alarms } from './alarms';
import { Api } from './api';
import { Connect } from './connect';
import { ConnectTargets } from './connect-targets';
import { Data } from './data';
import { Gateway } from './gateway';
import { acknowledgeNagFindings } from './nag';
import { Network } from './network';
import { PUBLIC_SSH_PORT } from './ports';
import type { Settings } from './settings';
import { Sweeper } from './sweeper';

/** The stack's name (and construct id): `cdk deploy Tunnelkeeper`. */
export const STACK_NAME = 'Tunnelkeeper';

export interface TunnelkeeperStackProps extends StackProps {
  settings: Settings;
}

export class TunnelkeeperStack extends Stack {
  readonly network: Network;
  readonly data: Data;
  readonly settings: Settings;
  readonly alerts: Topic;
  readonly alertsKey: Key;
  readonly api: Api;
  readonly sweeper: Sweeper;
  readonly gateway: Gateway;
  readonly connect: Connect;
  readonly connectTargets: ConnectTargets;
  readonly alarms: Alarms;

  constructor(scope: Construct, id: string, props: TunnelkeeperStackProps) {
    super(scope, id, props);
    const { settings } = props;
    this.settings = settings;

    this.network = new Network(this, 'Network', { settings });
    this.data = new Data(this, 'Data', { settings });
    this.alertsKey = new Key(this, 'AlertsKey', {
      description: 'Tunnelkeeper alerts topic encryption',
      enableKeyRotation: true,
    });
    this.alerts = this.alertsTopic(settings, this.alertsKey);

    // One set of values for every runtime: the API's status-on-read and the sweeper must judge a
    // tunnel with the same timing the gateway heartbeats and keeps alive with.
    const runtimeEnv: Record<string, string> = {
      TABLE_NAME: this.data.table.tableName,
      SECRET_PREFIX: settings.secretPrefix,
      TUNNEL_PORT_RANGE: `${settings.portRange.from}-${settings.portRange.to}`,
      HEARTBEAT_INTERVAL_MS: String(settings.heartbeatIntervalMs),
      SSH_KEEPALIVE_INTERVAL_MS: String(settings.sshKeepaliveIntervalMs),
      DOWN_GRACE_MS: String(settings.downGraceMs),
      LOG_LEVEL: settings.logLevel,
    };

    this.gateway = new Gateway(this, 'Gateway', {
      settings,
      data: this.data,
      runtimeEnv,
      region: this.region,
      vpc: this.network.vpc,
      taskSecurityGroup: this.network.gatewaySecurityGroup,
      nlbSecurityGroup: this.network.nlbSecurityGroup,
    });
    this.connect = new Connect(this, 'Connect', {
      blocks: settings.connectBlocks,
      vpc: this.network.vpc,
      securityGroup: this.network.connectSecurityGroup,
    });
    this.connectTargets = new ConnectTargets(this, 'ConnectTargets', {
      connect: this.connect,
      cluster: this.gateway.cluster,
      service: this.gateway.service,
      gatewayTargetGroup: this.gateway.targetGroup,
      logLevel: settings.logLevel,
    });
    const publicSshHost = settings.publicSshHost ?? this.gateway.nlb.loadBalancerDnsName;
    this.api = new Api(this, 'Api', {
      settings,
      data: this.data,
      runtimeEnv,
      connectHosts: this.connect.connectHosts,
      publicSshHost,
      publicSshPort: PUBLIC_SSH_PORT,
      egressIps: this.network.egressAddresses,
      vpc: this.network.vpc,
      securityGroup: this.network.apiSecurityGroup,
    });
    this.sweeper = new Sweeper(this, 'Sweeper', {
      data: this.data,
      runtimeEnv,
      alerts: this.alerts,
      alertsKey: this.alertsKey,
      vpc: this.network.vpc,
    });
    this.alarms = new Alarms(this, 'Alarms', {
      topic: this.alerts,
      httpApi: this.api.httpApi,
      apiFunction: this.api.fn,
      sweeperFunction: this.sweeper.fn,
      connectTargetsFunction: this.connectTargets.fn,
      table: this.data.table,
      gatewayLogGroup: this.gateway.logGroup,
      gatewayTargetGroup: this.gateway.targetGroup,
    });

    this.outputs(settings, publicSshHost);
    acknowledgeNagFindings(this);
  }

  /**
   * Alerts (tunnel.down / tunnel.up from the sweeper) and alarms share one topic, encrypted with a
   * key of our own: CloudWatch cannot publish to a topic under the AWS-managed SNS key.
   */
  private alertsTopic(settings: Settings, key: Key): Topic {
    key.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'], // in a key policy, `*` is this key
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );
    const topic = new Topic(this, 'Alerts', {
      displayName: 'Tunnelkeeper alerts',
      masterKey: key,
      enforceSSL: true,
    });
    // A topic policy replaces SNS's default one: name CloudWatch alarms of this account explicitly.
    topic.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': this.account },
          ArnLike: {
            'aws:SourceArn': `arn:${this.partition}:cloudwatch:${this.region}:${this.account}:alarm:*`,
          },
        },
      }),
    );
    if (settings.alertEmail) topic.addSubscription(new EmailSubscription(settings.alertEmail));
    return topic;
  }

  private outputs(settings: Settings, publicSshHost: string): void {
    if (settings.egressEipAllocationIds) {
      new CfnOutput(this, 'EgressIpAllocationIds', {
        description: 'The Elastic IPs (given by context) every outbound connection leaves from',
        value: Fn.join(',', settings.egressEipAllocationIds),
      });
    }
    new CfnOutput(this, 'EgressIps', {
      description:
        'Static egress IPs (NAT gateways): customers allowlist these on their bastions (also in GET /v1/info)',
      value: Fn.join(',', this.network.egressAddresses),
    });
    new CfnOutput(this, 'SshEndpoint', {
      description: 'Reverse-tunnel SSH endpoint customers connect to (host:port in their commands)',
      value: `${publicSshHost}:${PUBLIC_SSH_PORT}`,
    });
    new CfnOutput(this, 'NlbDnsName', {
      description: 'Point the DNS name given as publicSshHost at this (CNAME or alias)',
      value: this.gateway.nlb.loadBalancerDnsName,
    });
    new CfnOutput(this, 'PlatformSecurityGroupId', {
      description:
        "Attach to platform workloads: the only source allowed to reach tunnels' connect.host:port",
      value: this.network.platformSecurityGroup.securityGroupId,
    });
    new CfnOutput(this, 'ConnectHosts', {
      description:
        'connect.host by tunnel port (FROM-TO=internal load balancer DNS name): stable for each tunnel',
      value: this.connect.connectHosts,
    });
    new CfnOutput(this, 'VpcId', {
      description: 'Platform workloads run in this VPC (connect.host is an internal load balancer in it)',
      value: this.network.vpc.vpcId,
    });
    new CfnOutput(this, 'AlertsTopicArn', {
      description: 'SNS topic of tunnel alerts and CloudWatch alarms: on-call subscribes here',
      value: this.alerts.topicArn,
    });
    new CfnOutput(this, 'AdminTokenSecretName', {
      description: 'Secrets Manager secret holding the operator token for /v1/admin/*',
      value: this.data.adminToken.secretName,
    });
    new CfnOutput(this, 'TableName', { value: this.data.table.tableName });
  }
}

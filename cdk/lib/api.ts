/**
 * The public HTTPS API: the API Lambda behind an HTTP API. The `$default` stage (a named stage
 * would put its name into `rawPath` and break Hono's routing) with throttling and JSON access logs.
 * The Lambda runs in the private subnets: it calls the gateway tasks' control endpoint on their
 * VPC addresses (tunnel tests), and anything it opens to the outside leaves through the egress IPs
 * customers allowlist.
 */
import { CfnOutput, Fn, RemovalPolicy } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import { HttpApi, HttpStage, LogGroupLogDestination } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { ISecurityGroup, IVpc } from 'aws-cdk-lib/aws-ec2';
import { SubnetType } from 'aws-cdk-lib/aws-ec2';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { Data } from './data';
import { API_TIMEOUT, tunnelkeeperFunction } from './lambda-function';
import type { Settings } from './settings';

export interface ApiProps {
  settings: Settings;
  data: Data;
  /** Variables every runtime shares (table, prefix, status timing). */
  runtimeEnv: Record<string, string>;
  /** `CONNECT_HOSTS`: the stable `connect.host` of each block of tunnel ports (connect.ts). */
  connectHosts: string;
  publicSshHost: string;
  publicSshPort: number;
  /** The addresses standard tunnels leave from (the NAT gateways' EIPs), for `GET /v1/info`. */
  egressIps: string[];
  vpc: IVpc;
  securityGroup: ISecurityGroup;
}

export class Api extends Construct {
  readonly fn: NodejsFunction;
  readonly httpApi: HttpApi;
  readonly stage: HttpStage;
  readonly accessLogs: LogGroup;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const { data, settings } = props;
    this.fn = tunnelkeeperFunction(this, 'Function', {
      bundle: 'api',
      description: 'Tunnelkeeper HTTP API',
      environment: {
        ...props.runtimeEnv,
        CONNECT_HOSTS: props.connectHosts,
        PUBLIC_SSH_HOST: props.publicSshHost,
        PUBLIC_SSH_PORT: String(props.publicSshPort),
        EGRESS_IPS: Fn.join(',', props.egressIps),
      },
      // RSA-4096 key generation is CPU-bound: more memory is more CPU.
      memorySize: 1024,
      timeout: API_TIMEOUT,
      vpc: props.vpc,
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [props.securityGroup],
    }).fn;
    data.grantTable(this.fn);
    data.grantTunnelSecrets(this.fn, 'manage');
    data.grantSharedSecrets(this.fn);
    // Seals alert channels' credentials at create (making the key with the first channel), opens them for a test.
    data.grantAlertChannelKey(this.fn, 'create');
    data.adminToken.grantRead(this.fn);

    this.httpApi = new HttpApi(this, 'HttpApi', {
      description: 'Tunnelkeeper public API',
      defaultIntegration: new HttpLambdaIntegration('Lambda', this.fn),
      createDefaultStage: false,
    });
    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = new HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: settings.apiRateLimit, burstLimit: settings.apiBurstLimit },
      accessLogSettings: {
        destination: new LogGroupLogDestination(this.accessLogs),
        // No headers or bodies: API keys travel in Authorization and must never reach a log.
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTime',
            ip: '$context.identity.sourceIp',
            method: '$context.httpMethod',
            path: '$context.path',
            status: '$context.status',
            latencyMs: '$context.responseLatency',
            integrationStatus: '$context.integrationStatus',
            integrationError: '$context.integrationErrorMessage',
            userAgent: '$context.identity.userAgent',
          }),
        ),
      },
    });
    new CfnOutput(scope, 'ApiUrl', {
      description: 'The public HTTPS API (CONTRACT.md routes at its root)',
      value: this.httpApi.apiEndpoint,
    });
  }
}

/**
 * The status sweeper, whose cost follows what happens rather than the fleet's size: the table's
 * stream hands it every write to a tunnel's STATE or META item; an EventBridge schedule runs the
 * periodic pass a minute (silent gateways, timers due) and a pass over every tunnel every six hours.
 * Overlapping runs are safe (every write is conditional), a failed scheduled run is simply the next
 * run's work, so neither the schedule nor Lambda retries it.
 *
 * It runs in the private subnets: the alerts it sends to customers' alert channels (webhooks,
 * Slack, PagerDuty) leave through the NAT gateways' Elastic IPs, the addresses customers allowlist.
 */
import { Duration } from 'aws-cdk-lib';
import { type IVpc, SecurityGroup, SubnetType } from 'aws-cdk-lib/aws-ec2';
import { Rule, RuleTargetInput, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { FilterCriteria, FilterRule, StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { Data } from './data';
import { tunnelkeeperFunction } from './lambda-function';

export const SWEEP_INTERVAL = Duration.minutes(1);
export const FULL_SWEEP_INTERVAL = Duration.hours(6);

export interface SweeperProps {
  data: Data;
  runtimeEnv: Record<string, string>;
  alerts: ITopic;
  /** The topic's encryption key: publishing encrypts with it. */
  alertsKey: IKey;
  vpc: IVpc;
}

export class Sweeper extends Construct {
  readonly fn: NodejsFunction;
  readonly schedule: Rule;

  constructor(scope: Construct, id: string, props: SweeperProps) {
    super(scope, id);
    this.fn = tunnelkeeperFunction(this, 'Function', {
      bundle: 'sweeper',
      description: 'Tunnelkeeper status sweeper and alerting',
      environment: {
        ...props.runtimeEnv,
        ALERT_TOPIC_ARN: props.alerts.topicArn,
        SWEEP_INTERVAL_MS: String(SWEEP_INTERVAL.toMilliseconds()),
      },
      memorySize: 512,
      // Ends before the next scheduled run starts; the handler keeps 10 s to settle its claims.
      timeout: Duration.seconds(55),
      retryAttempts: 0,
      vpc: props.vpc,
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      // Out only (DynamoDB, SNS, alert channels over https); nothing reaches it.
      securityGroups: [
        new SecurityGroup(this, 'SecurityGroup', {
          vpc: props.vpc,
          description: 'Tunnelkeeper sweeper: outbound only',
          allowAllOutbound: true,
        }),
      ],
    }).fn;
    props.data.grantTable(this.fn);
    // Opens alert channels' sealed credentials to send; the API creates the key, never the sweeper.
    props.data.grantAlertChannelKey(this.fn, 'read');
    // Spelled out rather than `grantPublish`, whose key grant adds the wildcard kms:GenerateDataKey*.
    this.fn.addToRolePolicy(
      new PolicyStatement({ actions: ['sns:Publish'], resources: [props.alerts.topicArn] }),
    );
    this.fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [props.alertsKey.keyArn],
      }),
    );

    const pass = (name: 'due' | 'full') =>
      new LambdaFunction(this.fn, {
        event: RuleTargetInput.fromObject({ pass: name }),
        retryAttempts: 0,
        maxEventAge: Duration.minutes(1),
      });
    // What can change without a write: silent gateways' tunnels and status timers come due.
    this.schedule = new Rule(this, 'Schedule', {
      description: 'Tunnelkeeper: one periodic status pass a minute (silent gateways, timers due)',
      schedule: Schedule.rate(SWEEP_INTERVAL),
      targets: [pass('due')],
    });
    // Every tunnel now and then, in case a write went unseen.
    new Rule(this, 'FullSchedule', {
      description: 'Tunnelkeeper: a status pass over every tunnel every six hours',
      schedule: Schedule.rate(FULL_SWEEP_INTERVAL),
      targets: [pass('full')],
    });
    // Every write to a tunnel's STATE or META item, as it happens (keys only; the sweeper reads).
    this.fn.addEventSource(
      new DynamoEventSource(props.data.table, {
        startingPosition: StartingPosition.LATEST,
        batchSize: 100,
        maxBatchingWindow: Duration.seconds(1),
        // A failing batch is split to find the bad record, then left to the full pass.
        bisectBatchOnError: true,
        retryAttempts: 3,
        filters: [
          FilterCriteria.filter({
            dynamodb: {
              Keys: {
                pk: { S: FilterRule.beginsWith('TUNNEL#') },
                sk: { S: FilterRule.or('STATE', 'META') },
              },
            },
          }),
        ],
      }),
    );
  }
}

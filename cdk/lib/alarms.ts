/**
 * CloudWatch alarms, each wired (alarm and recovery) to the alerts topic on-call subscribes to.
 *
 * "No worker heartbeat" is watched from both sides of the heartbeat:
 * - a worker that is alive but cannot write its heartbeat (DynamoDB throttling, IAM, network) logs
 *   `heartbeat write failed` at every beat; a metric filter on the gateway log counts those lines;
 * - a worker that is gone writes nothing at all: the NLB's health checks of the gateway's own
 *   health endpoint stop passing, so the target group's healthy host count falls to zero.
 * Either way the status machine soon reports the worker's tunnels as `worker_lost`.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import type { HttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
import {
  Alarm,
  ComparisonOperator,
  type IMetric,
  MathExpression,
  Metric,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { NetworkTargetGroup } from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { FilterPattern, type ILogGroup, MetricFilter } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

export const METRIC_NAMESPACE = 'Tunnelkeeper';
/** The gateway's log message on a failed heartbeat write (fargate/gateway.ts). */
export const HEARTBEAT_FAILED_MESSAGE = 'heartbeat write failed';

export interface AlarmsProps {
  topic: ITopic;
  httpApi: HttpApi;
  apiFunction: IFunction;
  sweeperFunction: IFunction;
  table: ITable;
  gatewayLogGroup: ILogGroup;
  gatewayTargetGroup: NetworkTargetGroup;
}

export class Alarms extends Construct {
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    const minute = Duration.minutes(1);
    const fiveMinutes = Duration.minutes(5);

    this.add('ApiServerErrors', {
      description: 'The HTTP API answered 5xx (Lambda errors, timeouts or integration failures)',
      metric: props.httpApi.metricServerError({ period: fiveMinutes, statistic: 'Sum' }),
      threshold: 5,
      evaluationPeriods: 1,
    });

    this.add('SweeperErrors', {
      description: 'Three sweeps in a row failed: tunnel status and alerts are going stale',
      metric: props.sweeperFunction.metricErrors({ period: minute, statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 3,
    });
    this.add('SweeperNotRunning', {
      description: 'No sweep ran for 5 minutes: no tunnel alert can be sent',
      metric: props.sweeperFunction.metricInvocations({ period: minute, statistic: 'Sum' }),
      threshold: 1,
      comparison: ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 5,
      missing: TreatMissingData.BREACHING,
    });

    const heartbeatFailures = new MetricFilter(this, 'HeartbeatFailuresFilter', {
      logGroup: props.gatewayLogGroup,
      filterPattern: FilterPattern.stringValue('$.msg', '=', HEARTBEAT_FAILED_MESSAGE),
      metricNamespace: METRIC_NAMESPACE,
      metricName: 'GatewayHeartbeatFailures',
      metricValue: '1',
      defaultValue: 0,
    });
    this.add('GatewayHeartbeatFailing', {
      description:
        'A gateway worker failed to write its heartbeat for 3 minutes: its tunnels turn worker_lost',
      metric: heartbeatFailures.metric({ period: minute, statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 3,
    });
    this.add('GatewayWorkersDown', {
      description: 'No gateway worker passes health checks: no heartbeat, no reverse endpoint',
      metric: props.gatewayTargetGroup.metrics.healthyHostCount({ period: minute, statistic: 'Minimum' }),
      threshold: 1,
      comparison: ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 2,
      missing: TreatMissingData.BREACHING,
    });

    this.add('LambdaThrottles', {
      description: 'The API or the sweeper Lambda was throttled (account concurrency exhausted)',
      metric: new MathExpression({
        expression: 'api + sweeper',
        usingMetrics: {
          api: props.apiFunction.metricThrottles({ period: fiveMinutes, statistic: 'Sum' }),
          sweeper: props.sweeperFunction.metricThrottles({ period: fiveMinutes, statistic: 'Sum' }),
        },
        period: fiveMinutes,
        label: 'Lambda throttles',
      }),
      threshold: 1,
      evaluationPeriods: 1,
    });
    const tableMetric = (metricName: string) =>
      new Metric({
        namespace: 'AWS/DynamoDB',
        metricName,
        dimensionsMap: { TableName: props.table.tableName },
        period: fiveMinutes,
        statistic: 'Sum',
      });
    this.add('DynamoDbThrottles', {
      description: 'DynamoDB throttled requests on the table (heartbeats and state writes at risk)',
      metric: new MathExpression({
        expression: 'reads + writes',
        usingMetrics: {
          reads: tableMetric('ReadThrottleEvents'),
          writes: tableMetric('WriteThrottleEvents'),
        },
        period: fiveMinutes,
        label: 'DynamoDB throttle events',
      }),
      threshold: 10,
      evaluationPeriods: 1,
    });

    const action = new SnsAction(props.topic);
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
  }

  private add(
    id: string,
    options: {
      description: string;
      metric: IMetric;
      threshold: number;
      evaluationPeriods: number;
      comparison?: ComparisonOperator;
      missing?: TreatMissingData;
    },
  ): void {
    this.alarms.push(
      new Alarm(this, id, {
        alarmName: `${Stack.of(this).stackName}-${id}`,
        alarmDescription: options.description,
        metric: options.metric,
        threshold: options.threshold,
        evaluationPeriods: options.evaluationPeriods,
        datapointsToAlarm: options.evaluationPeriods,
        comparisonOperator: options.comparison ?? ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: options.missing ?? TreatMissingData.NOT_BREACHING,
      }),
    );
  }
}

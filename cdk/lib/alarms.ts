/**
 * CloudWatch alarms, each wired (alarm and recovery) to the alerts topic on-call subscribes to.
 *
 * "No worker heartbeat" is watched from both sides of the heartbeat:
 * - a worker that is alive but cannot write its heartbeat (DynamoDB throttling, IAM, network) logs
 *   `heartbeat write failed` at every beat; a metric filter on the gateway log counts those lines;
 * - a worker that is gone writes nothing at all: the NLB's health checks of the gateway's own
 *   health endpoint stop passing, so the target group's healthy host count falls to zero.
 * Either way the status machine soon reports the worker's tunnels as `worker_lost`.
 *
 * The operator metrics (docs/metrics.md) reach CloudWatch as embedded-metric log lines from the
 * gateways and the sweeper; the alarms below the built-in ones watch them.
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
import { EMF_NAMESPACE as OPERATOR_METRIC_NAMESPACE } from '../../shared/metrics/emf';

export const METRIC_NAMESPACE = 'Tunnelkeeper';
/** The gateway's log message on a failed heartbeat write (fargate/gateway.ts). */
export const HEARTBEAT_FAILED_MESSAGE = 'heartbeat write failed';

export interface AlarmsProps {
  topic: ITopic;
  httpApi: HttpApi;
  apiFunction: IFunction;
  sweeperFunction: IFunction;
  connectTargetsFunction: IFunction;
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

    this.add('ConnectTargetsFailing', {
      description:
        'Gateway tasks could not be registered in the connect load balancers for 3 minutes: a new task ' +
        'gets no platform connections, a stopped one may still be sent some',
      metric: props.connectTargetsFunction.metricErrors({ period: minute, statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 3,
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

    this.addOperatorMetricAlarms(minute, fiveMinutes);

    const action = new SnsAction(props.topic);
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
  }

  /** Alarms on the figures the gateways and the sweeper write as embedded metrics. */
  private addOperatorMetricAlarms(minute: Duration, fiveMinutes: Duration): void {
    const operator = (
      metricName: string,
      service: 'gateway' | 'sweeper',
      dimensions: Record<string, string>,
      period: Duration,
      statistic = 'Sum',
    ) =>
      new Metric({
        namespace: OPERATOR_METRIC_NAMESPACE,
        metricName,
        dimensionsMap: { Service: service, ...dimensions },
        period,
        statistic,
      });
    this.add('AlertDeliveriesFailed', {
      description:
        'An alert was given up for a destination (not delivered within its retry window, or refused for good)',
      metric: operator('AlertDeliveries', 'sweeper', { result: 'failed' }, fiveMinutes),
      threshold: 1,
      evaluationPeriods: 1,
    });
    this.add('SweepsSlow', {
      description:
        'Sweeps take more than half the sweep interval on average: alerts and history start to lag',
      metric: new MathExpression({
        expression: 'IF(n > 0, total / n, 0)',
        usingMetrics: {
          total: operator('SweepDurationSecondsSum', 'sweeper', {}, fiveMinutes),
          n: operator('SweepDurationSecondsCount', 'sweeper', {}, fiveMinutes),
        },
        period: fiveMinutes,
        label: 'Average sweep seconds',
      }),
      threshold: 30,
      evaluationPeriods: 3,
    });
    const tunnels = (state: string, type: string) =>
      operator('Tunnels', 'sweeper', { state, type }, minute, 'Maximum');
    this.add('ManyTunnelsDown', {
      description:
        'Half or more of the tunnels expected up are down at once: a platform problem, not a customer one',
      metric: new MathExpression({
        expression: 'IF(ru + su + rd + sd >= 4, (rd + sd) / (ru + su + rd + sd), 0)',
        usingMetrics: {
          ru: tunnels('up', 'reverse'),
          su: tunnels('up', 'standard'),
          rd: tunnels('down', 'reverse'),
          sd: tunnels('down', 'standard'),
        },
        period: minute,
        label: 'Share of tunnels down',
      }),
      threshold: 0.5,
      evaluationPeriods: 5,
    });
    this.add('TunnelConnectionsSlow', {
      description:
        'Opening a connection through a tunnel takes more than 2 s on average (bastions or gateways overloaded)',
      metric: new MathExpression({
        expression: 'IF(rn + sn > 0, (rt + st) / (rn + sn), 0)',
        usingMetrics: {
          rt: operator('TunnelConnectionOpenSecondsSum', 'gateway', { type: 'reverse' }, fiveMinutes),
          rn: operator('TunnelConnectionOpenSecondsCount', 'gateway', { type: 'reverse' }, fiveMinutes),
          st: operator('TunnelConnectionOpenSecondsSum', 'gateway', { type: 'standard' }, fiveMinutes),
          sn: operator('TunnelConnectionOpenSecondsCount', 'gateway', { type: 'standard' }, fiveMinutes),
        },
        period: fiveMinutes,
        label: 'Average connection open seconds',
      }),
      threshold: 2,
      evaluationPeriods: 2,
    });
    this.add('LoginsRefusedStorageUnavailable', {
      description:
        'Customer logins were refused because the table could not be read (and no cached copy served)',
      metric: operator('LoginsRefused', 'gateway', { reason: 'storage_unavailable' }, fiveMinutes),
      threshold: 1,
      evaluationPeriods: 1,
    });
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

/**
 * The connect-targets Lambda's dependencies from configuration: an ELB client for `AWS_REGION`,
 * the gateway service's target group and the connect load balancers, both required here.
 */
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { Env } from '../../shared/config';
import { ConfigError } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import type { ReconcileDeps } from './reconcile';

/** Target groups worked on at once: well inside ELB's request rate, and 100 groups in seconds. */
const CONCURRENCY = 4;
/** ELB throttles bursts of describe calls: the SDK's backoff with jitter, a few more times. */
const MAX_ATTEMPTS = 6;

export function reconcileDepsFromEnv(
  env: Env,
  wiring: { logger: Logger; client?: ElasticLoadBalancingV2Client },
): ReconcileDeps {
  const { GATEWAY_TARGET_GROUP_ARN: gatewayTargetGroupArn, CONNECT_LOAD_BALANCER_ARNS: arns } = env;
  if (!gatewayTargetGroupArn)
    throw new ConfigError('invalid configuration: GATEWAY_TARGET_GROUP_ARN: required');
  if (!arns) throw new ConfigError('invalid configuration: CONNECT_LOAD_BALANCER_ARNS: required');
  return {
    client:
      wiring.client ??
      new ElasticLoadBalancingV2Client({ region: env.AWS_REGION, maxAttempts: MAX_ATTEMPTS }),
    gatewayTargetGroupArn,
    connectLoadBalancerArns: arns,
    logger: wiring.logger.child({ component: 'connect-targets' }),
    concurrency: CONCURRENCY,
  };
}

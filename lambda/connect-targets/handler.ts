/**
 * The connect-targets Lambda: run by every state change of a gateway task (EventBridge, from ECS)
 * and once a minute (a schedule, for anything missed), it keeps the connect load balancers'
 * target groups holding exactly the gateway tasks (reconcile.ts). One invocation at a time
 * (reserved concurrency 1), so an older view never undoes a newer one.
 */
import { parseEnv } from '../../shared/config';
import { createLogger } from '../../shared/logger';
import { reconcileDepsFromEnv } from './compose';
import { type ReconcileDeps, type ReconcileReport, reconcileConnectTargets } from './reconcile';
import { taskHint } from './targets';

let deps: ReconcileDeps | undefined;

export const handler = async (event: unknown): Promise<ReconcileReport> => {
  if (!deps) {
    const env = parseEnv(process.env);
    deps = reconcileDepsFromEnv(env, { logger: createLogger(env.LOG_LEVEL) });
  }
  const hint = taskHint(event);
  const report = await reconcileConnectTargets(deps, hint);
  deps.logger.info('connect targets reconciled', { ...report, hint });
  // A failed invocation is what the error alarm counts; the next run retries what failed.
  if (report.failed > 0)
    throw new Error(`${report.failed} connect target groups not reconciled; see the log`);
  return report;
};

/**
 * Keeps every connect load balancer's target groups (one per tunnel port) holding exactly the
 * gateway tasks. ECS registers a service's tasks in at most five target groups, far fewer than one
 * per port, so this Lambda does it for the others (targets.ts decides, this module calls ELB).
 * Idempotent: a run repeats nothing that is already so, and a missed run is the next one's work.
 */
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  type ElasticLoadBalancingV2Client,
  paginateDescribeTargetGroups,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { Logger } from '../../shared/logger';
import { desiredTargets, type RegisteredTarget, type TaskHint, targetChanges } from './targets';

export interface ReconcileDeps {
  client: ElasticLoadBalancingV2Client;
  /** The gateway service's target group, which ECS keeps. */
  gatewayTargetGroupArn: string;
  connectLoadBalancerArns: readonly string[];
  logger: Logger;
  /** Target groups worked on at once: ELB's API throttles bursts. */
  concurrency: number;
}

export interface ReconcileReport {
  targets: string[];
  targetGroups: number;
  registered: number;
  deregistered: number;
  /** Target groups left as they were after an error (the next run tries again). */
  failed: number;
}

export async function reconcileConnectTargets(
  deps: ReconcileDeps,
  hint?: TaskHint,
): Promise<ReconcileReport> {
  const { client, logger } = deps;
  // Fails the run before any change: without the gateway's own list nothing can be judged.
  const desired = desiredTargets(await registeredTargets(client, deps.gatewayTargetGroupArn), hint);
  const groups: string[] = [];
  for (const loadBalancerArn of deps.connectLoadBalancerArns) {
    for await (const page of paginateDescribeTargetGroups({ client }, { LoadBalancerArn: loadBalancerArn })) {
      for (const group of page.TargetGroups ?? [])
        if (group.TargetGroupArn) groups.push(group.TargetGroupArn);
    }
  }
  const report: ReconcileReport = {
    targets: [...desired].sort(),
    targetGroups: groups.length,
    registered: 0,
    deregistered: 0,
    failed: 0,
  };
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < groups.length; i = next++) {
      const targetGroupArn = groups[i] ?? '';
      try {
        const changes = targetChanges(desired, await registeredTargets(client, targetGroupArn));
        if (changes.register.length > 0) {
          await client.send(
            new RegisterTargetsCommand({
              TargetGroupArn: targetGroupArn,
              Targets: changes.register.map((Id) => ({ Id })),
            }),
          );
          report.registered += changes.register.length;
        }
        if (changes.deregister.length > 0) {
          await client.send(
            new DeregisterTargetsCommand({
              TargetGroupArn: targetGroupArn,
              Targets: changes.deregister.map((Id) => ({ Id })),
            }),
          );
          report.deregistered += changes.deregister.length;
        }
      } catch (err) {
        report.failed++;
        logger.warn('connect target group not reconciled', { targetGroupArn, err });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, deps.concurrency) }, worker));
  return report;
}

async function registeredTargets(
  client: ElasticLoadBalancingV2Client,
  targetGroupArn: string,
): Promise<RegisteredTarget[]> {
  const { TargetHealthDescriptions = [] } = await client.send(
    new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn }),
  );
  return TargetHealthDescriptions.flatMap((d) =>
    d.Target?.Id ? [{ id: d.Target.Id, state: d.TargetHealth?.State ?? 'unknown' }] : [],
  );
}

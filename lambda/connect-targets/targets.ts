/**
 * Which gateway tasks each connect load balancer's target group should hold, and the changes that
 * get it there. The gateway service's own target group (the public SSH one) is the source of
 * truth: ECS registers every task it starts there and deregisters (drains) every task it stops,
 * before the task gets its SIGTERM. An ECS task state change adds what ECS has not written yet: a
 * task that just started, or one that is being stopped. Pure.
 */
import { z } from 'zod';

/** A registered target as `DescribeTargetHealth` reports it: the task's address and its state. */
export interface RegisteredTarget {
  id: string;
  state: string;
}

/** What an ECS task state change says of one gateway task. */
export interface TaskHint {
  ip: string;
  /** ECS is stopping it (desired STOPPED): take it out now, ahead of its SIGTERM. */
  isStopping: boolean;
}

/** Targets in these states are on their way out (ELB target health states). */
const LEAVING = new Set(['draining', 'unhealthy.draining']);

const EcsTaskStateChange = z.object({
  source: z.literal('aws.ecs'),
  'detail-type': z.literal('ECS Task State Change'),
  detail: z.object({
    lastStatus: z.string(),
    desiredStatus: z.string(),
    attachments: z
      .array(
        z.object({
          type: z.string(),
          details: z.array(z.object({ name: z.string(), value: z.string() })).default([]),
        }),
      )
      .default([]),
  }),
});

/** The task's address and fate, from an ECS task state change; undefined for any other event. */
export function taskHint(event: unknown): TaskHint | undefined {
  const parsed = EcsTaskStateChange.safeParse(event);
  if (!parsed.success) return undefined;
  const { lastStatus, desiredStatus, attachments } = parsed.data.detail;
  const ip = attachments
    .filter((a) => a.type === 'eni')
    .flatMap((a) => a.details)
    .find((d) => d.name === 'privateIPv4Address')?.value;
  if (!ip) return undefined;
  if (desiredStatus === 'STOPPED') return { ip, isStopping: true };
  // Listening only once running; earlier, the health checks would hold it back anyway.
  if (desiredStatus === 'RUNNING' && lastStatus === 'RUNNING') return { ip, isStopping: false };
  return undefined;
}

/** The addresses every connect target group should hold. */
export function desiredTargets(gateway: readonly RegisteredTarget[], hint?: TaskHint): Set<string> {
  const desired = new Set(gateway.filter((t) => !LEAVING.has(t.state)).map((t) => t.id));
  if (hint?.isStopping) desired.delete(hint.ip);
  else if (hint) desired.add(hint.ip);
  return desired;
}

/** What to register in and deregister from one target group to hold exactly `desired`. */
export function targetChanges(
  desired: ReadonlySet<string>,
  registered: readonly RegisteredTarget[],
): { register: string[]; deregister: string[] } {
  const present = new Set(registered.filter((t) => !LEAVING.has(t.state)).map((t) => t.id));
  return {
    register: [...desired].filter((ip) => !present.has(ip)).sort(),
    deregister: [...present].filter((ip) => !desired.has(ip)).sort(),
  };
}

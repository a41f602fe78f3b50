/**
 * How the tunnel port range is cut into blocks, one internal connect load balancer each. A Network
 * Load Balancer listener takes one port (no ranges), and an NLB holds at most 50 listeners (a
 * quota AWS does not raise); each listener forwards to a target group of its own that holds every
 * gateway task, and a target in N groups counts N times against the NLB's 500 targets (with
 * cross-zone load balancing). A deploy briefly runs twice the tasks, so a block is as large as
 * both allow. Pure: settings.ts checks a range with it, connect.ts builds from it.
 */

/** Listeners per Network Load Balancer: AWS's quota, not adjustable. */
export const MAX_LISTENERS_PER_NLB = 50;
/** Targets per Network Load Balancer with cross-zone load balancing: AWS's default quota. */
export const MAX_TARGETS_PER_NLB = 500;
/**
 * Connect load balancers one stack creates at most. Each costs an hourly fee and is one of the
 * region's 50 NLBs (default quota, shared with the public one and anything else in the account),
 * each port one of its 3,000 target groups: a bigger range is a quota request and a bill first.
 */
export const MAX_CONNECT_LOAD_BALANCERS = 20;

export interface PortBlock {
  from: number;
  to: number;
}

/** Tunnel ports one connect load balancer listens on, for `gatewayTaskCount` tasks. */
export function portsPerLoadBalancer(gatewayTaskCount: number): number {
  // Up to twice the tasks during a deploy (maxHealthyPercent 200), each in every port's group.
  const fitting = Math.floor(MAX_TARGETS_PER_NLB / (2 * gatewayTaskCount));
  return Math.max(1, Math.min(MAX_LISTENERS_PER_NLB, fitting));
}

/** The blocks of `range`, in order; throws when more load balancers than allowed would be needed. */
export function connectBlocks(range: PortBlock, gatewayTaskCount: number): PortBlock[] {
  const size = portsPerLoadBalancer(gatewayTaskCount);
  const ports = range.to - range.from + 1;
  const count = Math.ceil(ports / size);
  if (count > MAX_CONNECT_LOAD_BALANCERS) {
    throw new Error(
      `${ports} tunnel ports need ${count} internal load balancers of ${size} ports (one listener per port, ` +
        `${MAX_LISTENERS_PER_NLB} per load balancer, ${gatewayTaskCount} gateway tasks in every port's target group); ` +
        `at most ${MAX_CONNECT_LOAD_BALANCERS}: give at most ${MAX_CONNECT_LOAD_BALANCERS * size} ports`,
    );
  }
  return Array.from({ length: count }, (_, i) => ({
    from: range.from + i * size,
    to: Math.min(range.to, range.from + (i + 1) * size - 1),
  }));
}

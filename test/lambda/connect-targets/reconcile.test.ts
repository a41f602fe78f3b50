/**
 * The connect-targets run against a small in-memory Elastic Load Balancing (no emulator of it
 * runs here, so the client is mocked with aws-sdk-client-mock, answering from that state): the
 * gateway's own target group kept by "ECS", and two connect load balancers with their groups.
 */
import {
  DeregisterTargetsCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
  TargetGroupNotFoundException,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { reconcileDepsFromEnv } from '../../../lambda/connect-targets/compose';
import { type ReconcileDeps, reconcileConnectTargets } from '../../../lambda/connect-targets/reconcile';
import { parseEnv } from '../../../shared/config';
import { ConfigError } from '../../../shared/errors';
import { createLogger, silentLogger } from '../../../shared/logger';

const ARN = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012';
const GATEWAY_GROUP = `${ARN}:targetgroup/Tunnel-Gatew-0AAAAAAAAAAA/0123456789abcdef`;
const LBS = [
  `${ARN}:loadbalancer/net/Tunnel-Conne-1/aaaaaaaaaaaaaaaa`,
  `${ARN}:loadbalancer/net/Tunnel-Conne-2/bbbbbbbbbbbbbbbb`,
];
const groupArn = (port: number) =>
  `${ARN}:targetgroup/Tunnel-Port${port}/${port.toString(16).padStart(16, '0')}`;

const elb = mockClient(ElasticLoadBalancingV2Client);

/** target group ARN -> (address -> health state) */
let registered: Map<string, Map<string, string>>;
let failing: Set<string>;
let inFlight = 0;
let mostInFlight = 0;

function fakeElb(ports: number[][]): void {
  registered = new Map([[GATEWAY_GROUP, new Map()]]);
  for (const port of ports.flat()) registered.set(groupArn(port), new Map());
  failing = new Set();
  inFlight = 0;
  mostInFlight = 0;
  elb.reset();
  elb.on(DescribeTargetGroupsCommand).callsFake(({ LoadBalancerArn, Marker }) => {
    const lbPorts = ports[LBS.indexOf(LoadBalancerArn)] ?? [];
    // Two groups a page, to go through the paging.
    const start = Number(Marker ?? 0);
    const page = lbPorts.slice(start, start + 2);
    return {
      TargetGroups: page.map((port) => ({ TargetGroupArn: groupArn(port), Port: port })),
      NextMarker: start + 2 < lbPorts.length ? String(start + 2) : undefined,
    };
  });
  elb.on(DescribeTargetHealthCommand).callsFake(async ({ TargetGroupArn }) => {
    inFlight++;
    mostInFlight = Math.max(mostInFlight, inFlight);
    await new Promise((resolve) => setImmediate(resolve));
    inFlight--;
    const group = registered.get(TargetGroupArn);
    if (!group || failing.has(TargetGroupArn)) {
      throw new TargetGroupNotFoundException({
        message: 'One or more target groups not found',
        $metadata: {},
      });
    }
    return {
      TargetHealthDescriptions: [...group].map(([Id, State]) => ({
        Target: { Id },
        TargetHealth: { State },
      })),
    };
  });
  elb.on(RegisterTargetsCommand).callsFake(({ TargetGroupArn, Targets }) => {
    for (const { Id } of Targets) registered.get(TargetGroupArn)?.set(Id, 'initial');
    return {};
  });
  elb.on(DeregisterTargetsCommand).callsFake(({ TargetGroupArn, Targets }) => {
    for (const { Id } of Targets) registered.get(TargetGroupArn)?.set(Id, 'draining');
    return {};
  });
}

/** ECS's side: the gateway service's own target group. */
const ecsKeeps = (targets: Record<string, string>) => {
  registered.set(GATEWAY_GROUP, new Map(Object.entries(targets)));
};
/** The tasks a connect group holds (draining ones are leaving). */
const holding = (port: number) =>
  [...(registered.get(groupArn(port)) ?? [])]
    .filter(([, state]) => state !== 'draining')
    .map(([ip]) => ip)
    .sort();

const logs: Record<string, unknown>[] = [];
const deps = (): ReconcileDeps => ({
  client: new ElasticLoadBalancingV2Client({ region: 'eu-west-1' }),
  gatewayTargetGroupArn: GATEWAY_GROUP,
  connectLoadBalancerArns: LBS,
  logger: createLogger('warn', (line) => logs.push(JSON.parse(line))),
  concurrency: 2,
});

const PORTS = [
  [20000, 20001, 20002],
  [20003, 20004],
];

beforeEach(() => {
  logs.length = 0;
  fakeElb(PORTS);
});

describe('reconcileConnectTargets', () => {
  it("registers the gateway's tasks in every connect target group of every load balancer", async () => {
    ecsKeeps({ '10.0.16.5': 'healthy', '10.0.32.7': 'initial' });
    const report = await reconcileConnectTargets(deps());
    expect(report).toEqual({
      targets: ['10.0.16.5', '10.0.32.7'],
      targetGroups: 5,
      registered: 10,
      deregistered: 0,
      failed: 0,
    });
    for (const port of PORTS.flat()) expect(holding(port)).toEqual(['10.0.16.5', '10.0.32.7']);
  });

  it('changes nothing on a second run over the same tasks', async () => {
    ecsKeeps({ '10.0.16.5': 'healthy' });
    await reconcileConnectTargets(deps());
    const writes = () =>
      elb.commandCalls(RegisterTargetsCommand).length + elb.commandCalls(DeregisterTargetsCommand).length;
    const before = writes();
    expect(await reconcileConnectTargets(deps())).toMatchObject({ registered: 0, deregistered: 0 });
    expect(writes()).toBe(before);
  });

  it('follows a deploy: the new task in, the one ECS drains out', async () => {
    ecsKeeps({ '10.0.16.5': 'healthy', '10.0.32.7': 'healthy' });
    await reconcileConnectTargets(deps());
    ecsKeeps({ '10.0.16.5': 'draining', '10.0.32.7': 'healthy', '10.0.16.9': 'initial' });
    expect(await reconcileConnectTargets(deps())).toMatchObject({ registered: 5, deregistered: 5 });
    for (const port of PORTS.flat()) expect(holding(port)).toEqual(['10.0.16.9', '10.0.32.7']);
  });

  it("takes a stopping task out at its state change, before ECS's own group shows it draining", async () => {
    ecsKeeps({ '10.0.16.5': 'healthy', '10.0.32.7': 'healthy' });
    await reconcileConnectTargets(deps());
    await reconcileConnectTargets(deps(), { ip: '10.0.16.5', isStopping: true });
    for (const port of PORTS.flat()) expect(holding(port)).toEqual(['10.0.32.7']);
  });

  it('adds a task at its state change to running, before ECS registers it', async () => {
    ecsKeeps({ '10.0.16.5': 'healthy' });
    await reconcileConnectTargets(deps(), { ip: '10.0.32.7', isStopping: false });
    for (const port of PORTS.flat()) expect(holding(port)).toEqual(['10.0.16.5', '10.0.32.7']);
  });

  it('counts and logs a target group it could not read, and still does the others', async () => {
    ecsKeeps({ '10.0.16.5': 'healthy' });
    failing.add(groupArn(20001));
    const report = await reconcileConnectTargets(deps());
    expect(report).toMatchObject({ targetGroups: 5, registered: 4, failed: 1 });
    expect(holding(20000)).toEqual(['10.0.16.5']);
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'connect target group not reconciled',
        targetGroupArn: groupArn(20001),
      }),
    );
  });

  it("changes nothing when the gateway's own target group cannot be read", async () => {
    failing.add(GATEWAY_GROUP);
    await expect(reconcileConnectTargets(deps())).rejects.toThrow(/not found/);
    expect(elb.commandCalls(RegisterTargetsCommand)).toHaveLength(0);
    expect(elb.commandCalls(DeregisterTargetsCommand)).toHaveLength(0);
  });

  it('works on at most `concurrency` target groups at once', async () => {
    fakeElb([Array.from({ length: 20 }, (_, i) => 20000 + i)]);
    ecsKeeps({ '10.0.16.5': 'healthy' });
    const report = await reconcileConnectTargets({ ...deps(), connectLoadBalancerArns: [LBS[0] ?? ''] });
    expect(report).toMatchObject({ targetGroups: 20, registered: 20, failed: 0 });
    expect(mostInFlight).toBe(2);
  });
});

describe('reconcileDepsFromEnv', () => {
  it('reads both ARNs from the environment', () => {
    const env = parseEnv({
      GATEWAY_TARGET_GROUP_ARN: GATEWAY_GROUP,
      CONNECT_LOAD_BALANCER_ARNS: LBS.join(','),
    });
    const built = reconcileDepsFromEnv(env, { logger: silentLogger });
    expect(built.gatewayTargetGroupArn).toBe(GATEWAY_GROUP);
    expect(built.connectLoadBalancerArns).toEqual(LBS);
  });

  it.each([
    ['GATEWAY_TARGET_GROUP_ARN', { CONNECT_LOAD_BALANCER_ARNS: LBS.join(',') }],
    ['CONNECT_LOAD_BALANCER_ARNS', { GATEWAY_TARGET_GROUP_ARN: GATEWAY_GROUP }],
  ])('refuses to start without %s', (name, env) => {
    expect(() => reconcileDepsFromEnv(parseEnv(env), { logger: silentLogger })).toThrow(ConfigError);
    expect(() => reconcileDepsFromEnv(parseEnv(env), { logger: silentLogger })).toThrow(name);
  });

  it.each([
    ['GATEWAY_TARGET_GROUP_ARN', { GATEWAY_TARGET_GROUP_ARN: `${ARN}:loadbalancer/net/x/aaaaaaaaaaaaaaaa` }],
    ['CONNECT_LOAD_BALANCER_ARNS', { CONNECT_LOAD_BALANCER_ARNS: `${LBS[0]},not-an-arn` }],
  ])('refuses a %s that is not one', (name, env) => {
    expect(() => parseEnv(env)).toThrow(name);
  });
});

/** Which gateway tasks the connect target groups should hold, and the changes to get there. */
import { describe, expect, it } from 'vitest';
import { desiredTargets, targetChanges, taskHint } from '../../../lambda/connect-targets/targets';

/** An ECS task state change as EventBridge delivers it (the fields we read, and a few we do not). */
const taskEvent = (lastStatus: string, desiredStatus: string, ip = '10.0.16.5') => ({
  version: '0',
  source: 'aws.ecs',
  'detail-type': 'ECS Task State Change',
  detail: {
    clusterArn: 'arn:aws:ecs:eu-west-1:123456789012:cluster/Tunnelkeeper-GatewayCluster',
    group: 'service:Tunnelkeeper-GatewayService',
    lastStatus,
    desiredStatus,
    attachments: [
      {
        id: 'a1',
        type: 'eni',
        status: 'ATTACHED',
        details: [
          { name: 'subnetId', value: 'subnet-0abc' },
          { name: 'networkInterfaceId', value: 'eni-0abc' },
          { name: 'privateIPv4Address', value: ip },
        ],
      },
    ],
  },
});

describe('taskHint', () => {
  it.each<[string, unknown, ReturnType<typeof taskHint>]>([
    ['a task now running', taskEvent('RUNNING', 'RUNNING'), { ip: '10.0.16.5', isStopping: false }],
    [
      'a running task ECS is stopping',
      taskEvent('RUNNING', 'STOPPED'),
      { ip: '10.0.16.5', isStopping: true },
    ],
    ['a task stopped', taskEvent('STOPPED', 'STOPPED'), { ip: '10.0.16.5', isStopping: true }],
    ['a task still starting', taskEvent('PENDING', 'RUNNING'), undefined],
    ['the scheduled run', { source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} }, undefined],
    [
      'a task without its network interface yet',
      {
        ...taskEvent('PROVISIONING', 'RUNNING'),
        detail: { lastStatus: 'RUNNING', desiredStatus: 'RUNNING' },
      },
      undefined,
    ],
    ['anything else', 'not an event', undefined],
  ])('%s', (_, event, hint) => {
    expect(taskHint(event)).toEqual(hint);
  });
});

describe('desiredTargets', () => {
  const gateway = [
    { id: '10.0.16.5', state: 'healthy' },
    { id: '10.0.32.7', state: 'initial' },
    { id: '10.0.16.9', state: 'unhealthy' },
    { id: '10.0.32.8', state: 'draining' },
  ];

  it("holds every task of the gateway's own target group but those it drains", () => {
    expect([...desiredTargets(gateway)].sort()).toEqual(['10.0.16.5', '10.0.16.9', '10.0.32.7']);
  });

  it('adds a task that runs before ECS lists it, and drops one being stopped before ECS drains it', () => {
    expect(desiredTargets(gateway, { ip: '10.0.48.1', isStopping: false }).has('10.0.48.1')).toBe(true);
    expect(desiredTargets(gateway, { ip: '10.0.16.5', isStopping: true }).has('10.0.16.5')).toBe(false);
  });
});

describe('targetChanges', () => {
  it.each<[string, string[], { id: string; state: string }[], { register: string[]; deregister: string[] }]>([
    ['nothing to do', ['10.0.0.1'], [{ id: '10.0.0.1', state: 'healthy' }], { register: [], deregister: [] }],
    [
      'a new task',
      ['10.0.0.1', '10.0.0.2'],
      [{ id: '10.0.0.1', state: 'unhealthy' }],
      {
        register: ['10.0.0.2'],
        deregister: [],
      },
    ],
    [
      'a task gone',
      ['10.0.0.2'],
      [
        { id: '10.0.0.1', state: 'healthy' },
        { id: '10.0.0.2', state: 'initial' },
      ],
      { register: [], deregister: ['10.0.0.1'] },
    ],
    [
      'one already draining is not deregistered again',
      [],
      [{ id: '10.0.0.1', state: 'draining' }],
      {
        register: [],
        deregister: [],
      },
    ],
    [
      'one draining but wanted again is registered again',
      ['10.0.0.1'],
      [{ id: '10.0.0.1', state: 'draining' }],
      {
        register: ['10.0.0.1'],
        deregister: [],
      },
    ],
  ])('%s', (_, desired, registered, changes) => {
    expect(targetChanges(new Set(desired), registered)).toEqual(changes);
  });
});

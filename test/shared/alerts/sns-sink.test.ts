import { createHash } from 'node:crypto';
import {
  AuthorizationErrorException,
  PublishCommand,
  SNSClient,
  ThrottledException,
} from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { SnsAlertSink } from '../../../shared/alerts/sns-sink';
import { AlertDeliveryError } from '../../../shared/errors';
import { AlertSchema } from '../../../shared/schemas';
import { sampleAlert } from '../../helpers/alerts';

const TOPIC = 'arn:aws:sns:us-east-1:123456789012:tunnel-alerts';
const ID = 'tunnel.down@2026-01-03T00:00:00.000Z';
const sns = mockClient(SNSClient);

const throttled = () =>
  new ThrottledException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } });
const denied = () =>
  new AuthorizationErrorException({
    message: 'not authorized to publish',
    $metadata: { httpStatusCode: 403 },
  });

function sink(topic = TOPIC) {
  const delays: number[] = [];
  const sleep = async (ms: number) => {
    delays.push(ms);
  };
  return { sink: new SnsAlertSink(new SNSClient({ region: 'us-east-1' }), topic, { sleep }), delays };
}

describe('SnsAlertSink', () => {
  beforeEach(() => {
    sns.reset();
  });

  it('publishes the contract alert as the message, with type and ids as attributes', async () => {
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    await sink().sink.send({ id: ID, body: sampleAlert() });
    const calls = sns.commandCalls(PublishCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]?.args[0].input;
    expect(input?.TopicArn).toBe(TOPIC);
    expect(AlertSchema.strict().parse(JSON.parse(input?.Message ?? ''))).toEqual(sampleAlert());
    expect(input?.Subject).toBe('Tunnelkeeper tunnel.down: orders-db');
    expect(input?.MessageAttributes).toEqual({
      type: { DataType: 'String', StringValue: 'tunnel.down' },
      tunnelId: { DataType: 'String', StringValue: 'tun_aaaaaaaaaaaaaaaa' },
      workspaceId: { DataType: 'String', StringValue: 'ws_1' },
    });
    // A standard topic rejects FIFO fields.
    expect(input).not.toHaveProperty('MessageDeduplicationId');
    expect(input).not.toHaveProperty('MessageGroupId');
  });

  it('lets a FIFO topic de-duplicate a re-publish of the same alert', async () => {
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    const { sink: fifo } = sink(`${TOPIC}.fifo`);
    await fifo.send({ id: ID, body: sampleAlert() });
    await fifo.send({ id: ID, body: sampleAlert() });
    const inputs = sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(inputs.map((i) => i.MessageDeduplicationId)).toEqual(
      Array(2).fill(createHash('sha256').update(ID).digest('hex')),
    );
    expect(inputs[0]?.MessageGroupId).toBe('tun_aaaaaaaaaaaaaaaa');
  });

  it('retries a throttled publish with backoff and succeeds', async () => {
    sns.on(PublishCommand).rejectsOnce(throttled()).resolves({ MessageId: 'm-2' });
    const { sink: s, delays } = sink();
    await s.send({ id: ID, body: sampleAlert() });
    expect(sns.commandCalls(PublishCommand)).toHaveLength(2);
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeLessThanOrEqual(1_000);
  });

  it.each([
    ['throttled on every attempt: retryable by a later sweep', throttled, 3, true],
    [
      'an internal error on every attempt: retryable',
      () =>
        Object.assign(new Error('boom'), {
          name: 'InternalErrorException',
          $metadata: { httpStatusCode: 500 },
        }),
      3,
      true,
    ],
    [
      'no answer at all (network): retryable',
      () => Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }),
      3,
      true,
    ],
    ['not authorized: not retried', denied, 1, false],
  ])('%s', async (_, error, calls, retryable) => {
    sns.on(PublishCommand).rejects(error());
    const err = await sink()
      .sink.send({ id: ID, body: sampleAlert() })
      .catch((e: unknown) => e);
    expect(sns.commandCalls(PublishCommand)).toHaveLength(calls);
    expect(err).toBeInstanceOf(AlertDeliveryError);
    expect((err as AlertDeliveryError).retryable).toBe(retryable);
    expect((err as AlertDeliveryError).sink).toBe('sns');
  });

  it('keeps subjects within what SNS accepts: printable ASCII under 100 characters', async () => {
    sns.on(PublishCommand).resolves({ MessageId: 'm-3' });
    const name = `Zürich 数据库 ${'x'.repeat(120)}`;
    await sink().sink.send({ id: ID, body: sampleAlert({ tunnel: { id: 't', name, workspaceId: 'w' } }) });
    const subject = sns.commandCalls(PublishCommand)[0]?.args[0].input.Subject ?? '';
    expect(subject).toMatch(/^[\x20-\x7e]{1,99}$/);
    expect(subject.startsWith('Tunnelkeeper tunnel.down: Z?rich ??? x')).toBe(true);
  });
});

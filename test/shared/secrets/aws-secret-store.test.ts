import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  InternalServiceError,
  InvalidRequestException,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  RestoreSecretCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  SecretAccessDeniedError,
  SecretNotFoundError,
  SecretStoreError,
  SecretStoreUnavailableError,
  SecretThrottledError,
} from '../../../shared/errors';
import { AwsSecretStore } from '../../../shared/secrets/aws-secret-store';

const VALUE = '{"password":"hunter2-very-secret"}';
const NAME = 'tunnels/tun_abc';
const ID = 'tunnelkeeper/test/tunnels/tun_abc';

const sm = mockClient(SecretsManagerClient);
const store = new AwsSecretStore(new SecretsManagerClient({ region: 'us-east-1' }), 'tunnelkeeper/test');

beforeEach(() => {
  sm.reset();
});

function inputs<T extends Parameters<typeof sm.commandCalls>[0]>(command: T) {
  return sm.commandCalls(command).map((call) => call.args[0].input);
}

function awsError(name: string, httpStatusCode: number, message = 'boom'): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode } });
}

async function rejection(promise: Promise<unknown>): Promise<SecretStoreError> {
  const err = await promise.then(
    () => expect.unreachable('expected a rejection'),
    (e: unknown) => e,
  );
  if (!(err instanceof SecretStoreError)) throw err;
  expect(err.secretName).toBe(NAME);
  expect(err.message).not.toContain(VALUE);
  expect(err.message).not.toContain('hunter2');
  expect(err.cause).toBeDefined();
  return err;
}

describe('AwsSecretStore.put', () => {
  it('creates a new secret under the prefix', async () => {
    sm.on(CreateSecretCommand).resolves({ ARN: 'arn', Name: ID });
    await store.put(NAME, VALUE);
    expect(inputs(CreateSecretCommand)).toEqual([{ Name: ID, SecretString: VALUE }]);
    expect(sm.calls()).toHaveLength(1);
  });

  it('puts a new value when the secret exists', async () => {
    sm.on(CreateSecretCommand)
      .rejects(new ResourceExistsException({ message: 'already exists', $metadata: {} }))
      .on(PutSecretValueCommand)
      .resolves({});
    await store.put(NAME, VALUE);
    expect(inputs(PutSecretValueCommand)).toEqual([{ SecretId: ID, SecretString: VALUE }]);
    expect(inputs(RestoreSecretCommand)).toEqual([]);
  });

  it('restores a secret scheduled for deletion, then puts the value', async () => {
    sm.on(CreateSecretCommand)
      .rejects(
        new InvalidRequestException({
          message:
            "You can't create this secret because a secret with this name is already scheduled for deletion.",
          $metadata: { httpStatusCode: 400 },
        }),
      )
      .on(RestoreSecretCommand)
      .resolves({})
      .on(PutSecretValueCommand)
      .resolves({});
    await store.put(NAME, VALUE);
    expect(inputs(RestoreSecretCommand)).toEqual([{ SecretId: ID }]);
    expect(inputs(PutSecretValueCommand)).toEqual([{ SecretId: ID, SecretString: VALUE }]);
  });

  it('does not restore on other InvalidRequestExceptions', async () => {
    sm.on(CreateSecretCommand).rejects(
      new InvalidRequestException({ message: 'something else', $metadata: { httpStatusCode: 400 } }),
    );
    const err = await rejection(store.put(NAME, VALUE));
    expect(err.constructor).toBe(SecretStoreError);
    expect(err.message).toContain('InvalidRequestException');
    expect(sm.calls()).toHaveLength(1);
  });

  it('translates a failure of the follow-up PutSecretValue', async () => {
    sm.on(CreateSecretCommand)
      .rejects(new ResourceExistsException({ message: 'already exists', $metadata: {} }))
      .on(PutSecretValueCommand)
      .rejects(awsError('ThrottlingException', 400));
    expect(await rejection(store.put(NAME, VALUE))).toBeInstanceOf(SecretThrottledError);
  });
});

describe('AwsSecretStore.get', () => {
  it('returns the SecretString', async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: VALUE });
    await expect(store.get(NAME)).resolves.toBe(VALUE);
    expect(inputs(GetSecretValueCommand)).toEqual([{ SecretId: ID }]);
  });

  it('throws SecretNotFoundError for a missing secret', async () => {
    sm.on(GetSecretValueCommand).rejects(
      new ResourceNotFoundException({
        message: "Secrets Manager can't find the specified secret.",
        $metadata: {},
      }),
    );
    expect(await rejection(store.get(NAME))).toBeInstanceOf(SecretNotFoundError);
  });

  it('throws SecretStoreError for a binary-only secret', async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretBinary: new Uint8Array([1, 2]) });
    const err = await store.get(NAME).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretStoreError);
    expect(err).toMatchObject({ secretName: NAME, message: `secret ${NAME} has no string value` });
  });
});

describe('AwsSecretStore.delete', () => {
  it('force-deletes without recovery', async () => {
    sm.on(DeleteSecretCommand).resolves({});
    await store.delete(NAME);
    expect(inputs(DeleteSecretCommand)).toEqual([{ SecretId: ID, ForceDeleteWithoutRecovery: true }]);
  });

  it('treats a missing secret as deleted', async () => {
    sm.on(DeleteSecretCommand).rejects(
      new ResourceNotFoundException({ message: 'not found', $metadata: {} }),
    );
    await expect(store.delete(NAME)).resolves.toBeUndefined();
  });

  it('translates other failures', async () => {
    sm.on(DeleteSecretCommand).rejects(awsError('AccessDeniedException', 400));
    expect(await rejection(store.delete(NAME))).toBeInstanceOf(SecretAccessDeniedError);
  });
});

describe('error translation', () => {
  it.each([
    [
      'ResourceNotFoundException',
      () => new ResourceNotFoundException({ message: 'gone', $metadata: {} }),
      SecretNotFoundError,
    ],
    ['AccessDeniedException', () => awsError('AccessDeniedException', 400), SecretAccessDeniedError],
    ['AccessDenied', () => awsError('AccessDenied', 403), SecretAccessDeniedError],
    ['ThrottlingException', () => awsError('ThrottlingException', 400), SecretThrottledError],
    ['TooManyRequestsException', () => awsError('TooManyRequestsException', 400), SecretThrottledError],
    ['RequestLimitExceeded', () => awsError('RequestLimitExceeded', 400), SecretThrottledError],
    ['an unnamed HTTP 429', () => awsError('Error', 429), SecretThrottledError],
    [
      'InternalServiceError (an outage: 503 in the API)',
      () => new InternalServiceError({ message: 'oops', $metadata: {} }),
      SecretStoreUnavailableError,
    ],
    [
      'a network error (an outage)',
      () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      SecretStoreUnavailableError,
    ],
    ['an unnamed HTTP 503 (an outage)', () => awsError('Error', 503), SecretStoreUnavailableError],
    ['a plain Error with no AWS name', () => new Error('weird'), SecretStoreError],
  ])('maps %s on get to the right error', async (_, makeError, expected) => {
    sm.on(GetSecretValueCommand).rejects(makeError());
    const err = await rejection(store.get(NAME));
    expect(err.constructor).toBe(expected);
  });

  it.each([
    ['InternalServiceError', new InternalServiceError({ message: `failed on ${VALUE}`, $metadata: {} })],
    ['ThrottlingException', awsError('ThrottlingException', 400, `slow down ${VALUE}`)],
    ['AccessDeniedException', awsError('AccessDeniedException', 400, `no access ${VALUE}`)],
  ])('never copies the secret value into the message (%s on put)', async (_, error) => {
    sm.on(CreateSecretCommand).rejects(error);
    const err = await rejection(store.put(NAME, VALUE));
    expect(err.cause).toBe(error);
    expect(err.message).toContain(NAME);
  });
});

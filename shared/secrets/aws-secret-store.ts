import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  RestoreSecretCommand,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { z } from 'zod';
import {
  SecretAccessDeniedError,
  SecretNotFoundError,
  SecretStoreError,
  SecretStoreUnavailableError,
  SecretThrottledError,
} from '../errors';
import { outageReason } from '../store/storage-outage';
import type { SecretStore } from './secret-store';

/** Secrets Manager adapter: the secret `name` lives at `${prefix}/${name}`. */
export class AwsSecretStore implements SecretStore {
  constructor(
    private readonly client: SecretsManagerClient,
    private readonly prefix: string,
  ) {}

  async put(name: string, value: string): Promise<void> {
    const id = this.secretId(name);
    try {
      await this.client.send(new CreateSecretCommand({ Name: id, SecretString: value }));
    } catch (err) {
      if (isScheduledForDeletion(err)) {
        // The name is taken until the deletion completes (recovery window, or a force delete still in
        // progress); restoring the secret is the only way to use the name again now.
        await this.call(name, () => this.client.send(new RestoreSecretCommand({ SecretId: id })));
      } else if (awsError(err).name !== 'ResourceExistsException') {
        throw translate(name, err);
      }
      await this.call(name, () =>
        this.client.send(new PutSecretValueCommand({ SecretId: id, SecretString: value })),
      );
    }
  }

  async create(name: string, value: string): Promise<boolean> {
    try {
      await this.client.send(new CreateSecretCommand({ Name: this.secretId(name), SecretString: value }));
      return true;
    } catch (err) {
      if (awsError(err).name === 'ResourceExistsException') return false;
      if (isScheduledForDeletion(err)) {
        await this.put(name, value);
        return true;
      }
      throw translate(name, err);
    }
  }

  async get(name: string): Promise<string> {
    const { SecretString } = await this.call(name, () =>
      this.client.send(new GetSecretValueCommand({ SecretId: this.secretId(name) })),
    );
    if (SecretString === undefined) {
      throw new SecretStoreError(name, `secret ${name} has no string value`);
    }
    return SecretString;
  }

  async delete(name: string): Promise<void> {
    try {
      await this.client.send(
        new DeleteSecretCommand({ SecretId: this.secretId(name), ForceDeleteWithoutRecovery: true }),
      );
    } catch (err) {
      const error = translate(name, err);
      if (!(error instanceof SecretNotFoundError)) throw error;
    }
  }

  private async call<T>(name: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      throw translate(name, err);
    }
  }

  private secretId(name: string): string {
    return `${this.prefix}/${name}`;
  }
}

/** The parts of an SDK error we branch on; anything missing or malformed reads as empty. */
const awsErrorSchema = z.object({
  name: z.string().catch(''),
  message: z.string().catch(''),
  $metadata: z.object({ httpStatusCode: z.number().optional() }).catch({}),
});

function awsError(err: unknown): z.infer<typeof awsErrorSchema> {
  const parsed = awsErrorSchema.safeParse(err);
  return parsed.success ? parsed.data : { name: '', message: '', $metadata: {} };
}

function isScheduledForDeletion(err: unknown): boolean {
  const { name, message } = awsError(err);
  // AWS: "You can't create this secret because a secret with this name is already scheduled for deletion."
  return name === 'InvalidRequestException' && message.includes('scheduled for deletion');
}

const THROTTLING_CODES = new Set(['ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded']);

/** Maps an SDK failure to our named errors. Messages name the secret and the AWS code, never the value. */
function translate(name: string, err: unknown): SecretStoreError {
  const { name: code, $metadata } = awsError(err);
  const outage = outageReason(err);
  if (outage !== undefined && outage !== 'throttled') {
    return new SecretStoreUnavailableError(name, outage, { cause: err });
  }
  if (code === 'ResourceNotFoundException') return new SecretNotFoundError(name, { cause: err });
  if (code === 'AccessDeniedException' || code === 'AccessDenied') {
    return new SecretAccessDeniedError(name, { cause: err });
  }
  if (THROTTLING_CODES.has(code) || $metadata.httpStatusCode === 429) {
    return new SecretThrottledError(name, { cause: err });
  }
  const message = `Secrets Manager request for secret ${name} failed (${code || 'unknown error'})`;
  return new SecretStoreError(name, message, { cause: err });
}

/**
 * Secrets Manager, the one AWS service here with no local emulator, faked just enough for our
 * adapter: Create/Get/Put/Delete/Restore on names, with the service's error names. Served two
 * ways: as an aws-sdk-client-mock behaviour (in-process, e.g. for a Lambda bundle that shares the
 * test's SDK module), and as a tiny HTTP server speaking the service's JSON 1.1 protocol (for a
 * child process pointed at it with SECRETS_MANAGER_ENDPOINT).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  RestoreSecretCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';

type Input = Record<string, unknown>;
type Output = Record<string, unknown>;

export class FakeSecretError extends Error {
  constructor(
    override readonly name: string,
    message: string,
  ) {
    super(message);
  }
  readonly $metadata = { httpStatusCode: 400 };
}

export class FakeSecrets {
  readonly values = new Map<string, string>();
  /** Operations in order, as `Operation name` (never values). */
  readonly calls: string[] = [];
  private readonly region = 'us-east-1';

  private arn(name: string): string {
    return `arn:aws:secretsmanager:${this.region}:123456789012:secret:${name}-AbCdEf`;
  }

  private name(input: Input, field: 'Name' | 'SecretId'): string {
    const value = input[field];
    if (typeof value !== 'string' || value === '')
      throw new FakeSecretError('InvalidParameterException', `${field} missing`);
    return value;
  }

  private existing(name: string): string {
    const value = this.values.get(name);
    if (value === undefined) {
      throw new FakeSecretError(
        'ResourceNotFoundException',
        "Secrets Manager can't find the specified secret.",
      );
    }
    return value;
  }

  /** Runs one operation (`GetSecretValue`, ...) as the service would. */
  handle(operation: string, input: Input): Output {
    const id = operation === 'CreateSecret' ? this.name(input, 'Name') : this.name(input, 'SecretId');
    this.calls.push(`${operation} ${id}`);
    const base = { ARN: this.arn(id), Name: id };
    switch (operation) {
      case 'GetSecretValue':
        return {
          ...base,
          SecretString: this.existing(id),
          VersionId: randomUUID(),
          CreatedDate: Date.now() / 1000,
        };
      case 'CreateSecret':
        if (this.values.has(id)) {
          throw new FakeSecretError(
            'ResourceExistsException',
            `The operation failed because the secret ${id} already exists.`,
          );
        }
        this.values.set(id, String(input.SecretString ?? ''));
        return { ...base, VersionId: randomUUID() };
      case 'PutSecretValue':
        this.existing(id);
        this.values.set(id, String(input.SecretString ?? ''));
        return { ...base, VersionId: randomUUID() };
      case 'DeleteSecret':
        this.existing(id);
        this.values.delete(id);
        return { ...base, DeletionDate: Date.now() / 1000 };
      case 'RestoreSecret':
        this.existing(id);
        return base;
      default:
        throw new FakeSecretError('UnknownOperationException', `operation ${operation} is not faked`);
    }
  }

  /** Routes every SecretsManagerClient in this module graph to the fake; `restore()` when done. */
  mockClients() {
    const mock = mockClient(SecretsManagerClient);
    const route = (operation: string) => async (input: object) => this.handle(operation, input as Input);
    mock.on(GetSecretValueCommand).callsFake(route('GetSecretValue'));
    mock.on(CreateSecretCommand).callsFake(route('CreateSecret'));
    mock.on(PutSecretValueCommand).callsFake(route('PutSecretValue'));
    mock.on(DeleteSecretCommand).callsFake(route('DeleteSecret'));
    mock.on(RestoreSecretCommand).callsFake(route('RestoreSecret'));
    return mock;
  }

  /** The JSON 1.1 protocol over HTTP on 127.0.0.1 (port from the OS). */
  async serve(): Promise<{ endpoint: string; close(): Promise<void> }> {
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const target = String(req.headers['x-amz-target'] ?? '');
        const operation = target.replace(/^secretsmanager\./, '');
        let status = 200;
        let body: Output;
        try {
          body = this.handle(operation, JSON.parse(Buffer.concat(chunks).toString() || '{}') as Input);
        } catch (err) {
          status = 400;
          const e =
            err instanceof FakeSecretError ? err : new FakeSecretError('InternalServiceError', String(err));
          body = { __type: e.name, message: e.message };
        }
        res.writeHead(status, {
          'Content-Type': 'application/x-amz-json-1.1',
          'x-amzn-RequestId': randomUUID(),
        });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (!address || typeof address !== 'object') throw new Error('fake Secrets Manager has no address');
    return {
      endpoint: `http://127.0.0.1:${address.port}`,
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
  }
}

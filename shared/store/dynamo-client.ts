import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { StorageUnavailableError, type StorageUnavailableReason } from '../errors';
import { outageReason, StorageHealth } from './storage-outage';

/**
 * A table that stopped answering must fail a call in bounded time (the SDK's default is to wait
 * forever), so callers answer 503 and retry: a socket silent this long is given up. (A connection
 * timeout would also count the time a request waits for a pooled socket under bulk load.)
 */
const SOCKET_TIMEOUT_MS = 4_000;

export interface DynamoClients {
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  /** What this process has seen of the table's availability through these clients. */
  health: StorageHealth;
}

/**
 * The DynamoDB clients every runtime uses. With an explicit endpoint (DynamoDB Local) credentials
 * are placeholders, since DynamoDB Local accepts any; in AWS the default provider chain applies.
 * Failures that mean the table is unavailable (unreachable, throttled, failing, full) come out as
 * `StorageUnavailableError`, after the SDK's retries; every other error passes unchanged.
 */
export interface DynamoClientOptions {
  region: string;
  endpoint?: string;
  /**
   * Says more about a `failing` table when the runtime can (DynamoDB Local answers a full disk
   * with a bare InternalFailure; `npm start` knows the disk it writes to).
   */
  explainFailure?: () => Promise<StorageUnavailableReason | undefined>;
}

export function createDynamoClients(options: DynamoClientOptions): DynamoClients {
  const requestHandler = { socketTimeout: SOCKET_TIMEOUT_MS };
  const client = new DynamoDBClient(
    options.endpoint
      ? {
          region: options.region,
          endpoint: options.endpoint,
          credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
          requestHandler,
        }
      : { region: options.region, requestHandler },
  );
  const health = new StorageHealth();
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        const result = await next(args);
        health.succeeded();
        return result;
      } catch (err) {
        let reason = outageReason(err);
        if (reason === undefined) {
          health.succeeded(); // an answer (a condition failed, a bad request): the table is there
          throw err;
        }
        if (reason === 'failing' && options.explainFailure) {
          reason = (await options.explainFailure().catch(() => undefined)) ?? reason;
        }
        health.failed(reason);
        throw new StorageUnavailableError(reason, { cause: err });
      }
    },
    { step: 'initialize', name: 'storageOutage', priority: 'high' },
  );
  const doc = DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true },
  });
  return { client, doc, health };
}

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/**
 * The DynamoDB clients every runtime uses. With an explicit endpoint (DynamoDB Local) credentials
 * are placeholders, since DynamoDB Local accepts any; in AWS the default provider chain applies.
 */
export function createDynamoClients(options: { region: string; endpoint?: string }): {
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
} {
  const client = new DynamoDBClient(
    options.endpoint
      ? {
          region: options.region,
          endpoint: options.endpoint,
          credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        }
      : { region: options.region },
  );
  const doc = DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true },
  });
  return { client, doc };
}

import { randomBytes } from 'node:crypto';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { inject } from 'vitest';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { DynamoTunnelStore } from '../../shared/store/dynamo-tunnel-store';
import { ensureTable } from '../../shared/store/table';

/** A fresh table on the run's DynamoDB Local, with a store over it. */
export async function createTestTable() {
  const endpoint = inject('dynamoEndpoint');
  const tableName = `test-${randomBytes(6).toString('hex')}`;
  const { client, doc } = createDynamoClients({ region: 'us-east-1', endpoint });
  await ensureTable(client, tableName);
  return {
    endpoint,
    tableName,
    client,
    doc,
    store: new DynamoTunnelStore(doc, tableName),
    async drop() {
      await client.send(new DeleteTableCommand({ TableName: tableName }));
      client.destroy();
    },
  };
}

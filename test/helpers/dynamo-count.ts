import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/**
 * Wraps a document client's `send` to count the commands, writes and items read through it
 * (GetItem and BatchGetItem items; for queries, what DynamoDB read and bills, filters
 * notwithstanding).
 */
export function countingClient(doc: DynamoDBDocumentClient) {
  const WRITES = new Set([
    'PutCommand',
    'UpdateCommand',
    'DeleteCommand',
    'TransactWriteCommand',
    'BatchWriteCommand',
  ]);
  let writes = 0;
  let queries = 0;
  let itemsRead = 0;
  let queriedItems = 0;
  const commands: string[] = [];
  const send = doc.send.bind(doc) as (command: unknown, ...rest: unknown[]) => Promise<unknown>;
  const counted = new Proxy(doc, {
    get(target, prop, receiver) {
      if (prop !== 'send') return Reflect.get(target, prop, receiver);
      return async (command: { constructor: { name: string }; input: unknown }, ...rest: unknown[]) => {
        const name = command.constructor.name;
        if (WRITES.has(name)) writes++;
        if (name === 'QueryCommand') queries++;
        commands.push(name);
        const out = await send(command, ...rest);
        if (name === 'GetCommand' && (out as { Item?: unknown }).Item) itemsRead++;
        if (name === 'BatchGetCommand') {
          const responses = (out as { Responses?: Record<string, unknown[]> }).Responses ?? {};
          for (const items of Object.values(responses)) itemsRead += items.length;
        }
        if (name === 'QueryCommand') queriedItems += (out as { ScannedCount?: number }).ScannedCount ?? 0;
        return out;
      };
    },
  });
  return {
    doc: counted,
    writes: () => writes,
    queries: () => queries,
    itemsRead: () => itemsRead,
    /** Items queries read (their ScannedCount), before any filter. */
    queriedItems: () => queriedItems,
    /** Command names in the order they were sent. */
    commands: () => [...commands],
    reset() {
      writes = 0;
      queries = 0;
      itemsRead = 0;
      queriedItems = 0;
      commands.length = 0;
    },
  };
}

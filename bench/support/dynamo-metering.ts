/**
 * What one DynamoDB request costs, as the counting proxy sees it pass: the request units DynamoDB
 * reports for it (on demand, what is billed: a read request unit per 4 KB strongly consistent
 * read, half that eventually consistent, twice in a transaction; a write request unit per 1 KB
 * written, index writes included) and the items it read or wrote. The proxy asks for the units by
 * adding `ReturnConsumedCapacity: TOTAL` to each data request; the items come from the request
 * (keys asked, items written) and the answer (what was left unprocessed, what a query scanned).
 * Where DynamoDB Local reports less than DynamoDB bills at least (`readFloor`), the floor counts.
 * Pure: the proxy does the I/O.
 */

/** Operations that read items (billed in read request units). */
export const READ_OPERATIONS: ReadonlySet<string> = new Set([
  'GetItem',
  'BatchGetItem',
  'Query',
  'Scan',
  'TransactGetItems',
]);

/** Operations that write items (billed in write request units). */
export const WRITE_OPERATIONS: ReadonlySet<string> = new Set([
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchWriteItem',
  'TransactWriteItems',
]);

/** What one request cost. */
export interface Metered {
  kind: 'read' | 'write' | 'other';
  /**
   * Request units: as DynamoDB reported them, or estimated for a write refused by its condition;
   * null when a successful answer carried none (the request was not metered).
   */
  units: number | null;
  items: number;
  /** The units are an estimate: DynamoDB Local reports none with a refusal (DynamoDB bills it all the same). */
  estimated: boolean;
  /** The units reported were below what DynamoDB bills at least (`readFloor`), and were raised to it. */
  raised: boolean;
}

export type JsonObject = Record<string, unknown>;
type Json = JsonObject;

export const isJsonObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isObject = isJsonObject;

/** `{table: {Keys: [...]}}` (BatchGetItem) → the number of keys. */
function keysIn(requestItems: unknown): number {
  if (!isObject(requestItems)) return 0;
  let total = 0;
  for (const perTable of Object.values(requestItems)) {
    if (isObject(perTable) && Array.isArray(perTable.Keys)) total += perTable.Keys.length;
  }
  return total;
}

/** `{table: [{PutRequest}|{DeleteRequest}, ...]}` (BatchWriteItem) → the number of requests. */
function writesIn(requestItems: unknown): number {
  if (!isObject(requestItems)) return 0;
  let total = 0;
  for (const perTable of Object.values(requestItems)) if (Array.isArray(perTable)) total += perTable.length;
  return total;
}

/** Sum of `CapacityUnits` over a `ConsumedCapacity` object or list; null when there is none. */
export function capacityUnits(consumed: unknown): number | null {
  const entries = Array.isArray(consumed) ? consumed : consumed === undefined ? [] : [consumed];
  let total: number | null = null;
  for (const entry of entries) {
    if (isObject(entry) && typeof entry.CapacityUnits === 'number')
      total = (total ?? 0) + entry.CapacityUnits;
  }
  return total;
}

/**
 * The request body to send on: the same, asking for the total consumed capacity when the
 * operation reports one and the caller did not ask for it already.
 */
export function withCapacityRequested(operation: string, body: Json): Json {
  if (!READ_OPERATIONS.has(operation) && !WRITE_OPERATIONS.has(operation)) return body;
  if (body.ReturnConsumedCapacity === 'TOTAL' || body.ReturnConsumedCapacity === 'INDEXES') return body;
  return { ...body, ReturnConsumedCapacity: 'TOTAL' };
}

/** Items a request read or wrote, from its body and (for what was left undone or scanned) its answer. */
function itemsOf(operation: string, request: Json, answer: Json | undefined): number {
  switch (operation) {
    case 'BatchGetItem':
      return keysIn(request.RequestItems) - keysIn(answer?.UnprocessedKeys);
    case 'BatchWriteItem':
      return writesIn(request.RequestItems) - writesIn(answer?.UnprocessedItems);
    case 'Query':
    case 'Scan': {
      // Billed on what was scanned (before any filter), so ScannedCount, not Count.
      const scanned = answer?.ScannedCount ?? answer?.Count;
      return typeof scanned === 'number' ? scanned : 0;
    }
    case 'TransactGetItems':
    case 'TransactWriteItems':
      return Array.isArray(request.TransactItems) ? request.TransactItems.length : 0;
    default:
      return 1;
  }
}

/**
 * The read units DynamoDB bills a read at least: each key of a batch and each query or scan at
 * least half a unit, a whole one when strongly consistent (a read of an item that does not exist
 * is billed as one of a small item). DynamoDB Local reports 0 for a batch's missing keys and for a
 * query that finds nothing.
 */
export function readFloor(operation: string, request: Json, answer: Json | undefined): number {
  const per = (consistent: unknown) => (consistent === true ? 1 : 0.5);
  switch (operation) {
    case 'BatchGetItem': {
      let floor = 0;
      if (!isObject(request.RequestItems)) return 0;
      const unprocessed = isObject(answer?.UnprocessedKeys) ? answer.UnprocessedKeys : {};
      for (const [table, perTable] of Object.entries(request.RequestItems)) {
        if (!isObject(perTable) || !Array.isArray(perTable.Keys)) continue;
        const left = keysIn({ [table]: unprocessed[table] });
        floor += (perTable.Keys.length - left) * per(perTable.ConsistentRead);
      }
      return floor;
    }
    case 'GetItem':
    case 'Query':
    case 'Scan':
      return per(request.ConsistentRead);
    case 'TransactGetItems':
      return Array.isArray(request.TransactItems) ? 2 * request.TransactItems.length : 0;
    default:
      return 0;
  }
}

/**
 * What a request cost, from its operation, its (parsed) body, the answer's status and (parsed)
 * body; `answer` is undefined when it could not be read. Other failures cost nothing.
 */
export function meter(operation: string, request: Json, status: number, answer: Json | undefined): Metered {
  const kind = READ_OPERATIONS.has(operation) ? 'read' : WRITE_OPERATIONS.has(operation) ? 'write' : 'other';
  const none: Metered = { kind, units: 0, items: 0, estimated: false, raised: false };
  if (kind === 'other') return none;
  if (status >= 200 && status < 300) {
    const reported = capacityUnits(answer?.ConsumedCapacity);
    const floor = kind === 'read' ? readFloor(operation, request, answer) : 0;
    const raised = reported !== null && reported < floor;
    const units = reported === null ? null : Math.max(reported, floor);
    return { kind, units, items: itemsOf(operation, request, answer), estimated: false, raised };
  }
  const type = typeof answer?.__type === 'string' ? answer.__type : '';
  if (kind !== 'write' || !/ConditionalCheckFailed|TransactionCanceled/.test(type)) return none;
  // A refused write is billed as if written (1 KB or less per item; a transaction's items twice).
  const items = itemsOf(operation, request, undefined);
  return {
    kind,
    units: operation === 'TransactWriteItems' ? 2 * items : items,
    items,
    estimated: true,
    raised: false,
  };
}

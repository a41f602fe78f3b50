/**
 * What one DynamoDB request costs as the bench's proxy meters it: units from the answer's
 * ConsumedCapacity (raised to what DynamoDB bills at least), items from the request and the
 * answer, refused writes estimated, other failures free.
 */
import { describe, expect, it } from 'vitest';
import { capacityUnits, meter, withCapacityRequested } from '../../bench/support/dynamo-metering';

const keys = (n: number) => Array.from({ length: n }, (_, i) => ({ pk: { S: `K#${i}` }, sk: { S: 'META' } }));

describe('withCapacityRequested', () => {
  it('asks for the total on data requests only, and keeps what the caller asked', () => {
    expect(withCapacityRequested('GetItem', { TableName: 't' })).toEqual({
      TableName: 't',
      ReturnConsumedCapacity: 'TOTAL',
    });
    expect(withCapacityRequested('TransactWriteItems', { ReturnConsumedCapacity: 'NONE' })).toEqual({
      ReturnConsumedCapacity: 'TOTAL',
    });
    const indexes = { ReturnConsumedCapacity: 'INDEXES' };
    expect(withCapacityRequested('Query', indexes)).toBe(indexes);
    const describeTable = { TableName: 't' };
    expect(withCapacityRequested('DescribeTable', describeTable)).toBe(describeTable);
  });
});

describe('capacityUnits', () => {
  it.each([
    [{ TableName: 't', CapacityUnits: 0.5 }, 0.5],
    [[{ CapacityUnits: 2 }, { CapacityUnits: 1.5 }], 3.5],
    [undefined, null],
    [{ TableName: 't' }, null],
  ])('sums %j to %s', (consumed, units) => {
    expect(capacityUnits(consumed)).toBe(units);
  });
});

describe('meter', () => {
  it.each([
    ['GetItem', {}, { ConsumedCapacity: { CapacityUnits: 0.5 } }, 'read', 0.5, 1],
    [
      'BatchGetItem',
      { RequestItems: { t: { Keys: keys(100) } } },
      { ConsumedCapacity: [{ CapacityUnits: 40 }], UnprocessedKeys: { t: { Keys: keys(20) } } },
      'read',
      40,
      80,
    ],
    ['Query', {}, { Count: 2, ScannedCount: 7, ConsumedCapacity: { CapacityUnits: 0.5 } }, 'read', 0.5, 7],
    ['Scan', {}, { Count: 3 }, 'read', null, 3],
    [
      'BatchWriteItem',
      { RequestItems: { t: [{ PutRequest: {} }, { DeleteRequest: {} }, { PutRequest: {} }] } },
      { UnprocessedItems: { t: [{ PutRequest: {} }] }, ConsumedCapacity: [{ CapacityUnits: 2 }] },
      'write',
      2,
      2,
    ],
    [
      'TransactWriteItems',
      { TransactItems: [{ Put: {} }, { Update: {} }, { ConditionCheck: {} }] },
      { ConsumedCapacity: [{ CapacityUnits: 6 }] },
      'write',
      6,
      3,
    ],
    ['UpdateItem', {}, { ConsumedCapacity: { CapacityUnits: 1 } }, 'write', 1, 1],
    ['ListTables', {}, {}, 'other', 0, 0],
  ])('%s', (operation, request, answer, kind, units, items) => {
    expect(meter(operation, request, 200, answer)).toEqual({
      kind,
      units,
      items,
      estimated: false,
      raised: false,
    });
  });

  it.each([
    // 100 keys asked, 20 left: 80 read, at least half a unit each (DynamoDB Local: 0 for missing ones).
    [
      'BatchGetItem',
      { RequestItems: { t: { Keys: keys(100) } } },
      { UnprocessedKeys: { t: { Keys: keys(20) } } },
      40,
    ],
    ['BatchGetItem', { RequestItems: { t: { Keys: keys(3), ConsistentRead: true } } }, {}, 3],
    ['Query', {}, { Count: 0, ScannedCount: 0 }, 0.5],
    ['Query', { ConsistentRead: true }, { Count: 0, ScannedCount: 0 }, 1],
    ['TransactGetItems', { TransactItems: [{ Get: {} }, { Get: {} }] }, {}, 4],
  ])('raises a reported %s below what DynamoDB bills at least to %d', (operation, request, answer, floor) => {
    const metered = meter(operation, request, 200, { ...answer, ConsumedCapacity: { CapacityUnits: 0 } });
    expect(metered).toMatchObject({ units: floor, raised: true });
    expect(
      meter(operation, request, 200, { ...answer, ConsumedCapacity: { CapacityUnits: 50 } }),
    ).toMatchObject({
      units: 50,
      raised: false,
    });
  });

  it('estimates a write refused by its condition (billed, reported without units)', () => {
    const refused = { __type: 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException' };
    expect(meter('PutItem', {}, 400, refused)).toEqual({
      kind: 'write',
      units: 1,
      items: 1,
      estimated: true,
      raised: false,
    });
    const cancelled = { __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException' };
    expect(
      meter('TransactWriteItems', { TransactItems: [{ Put: {} }, { Delete: {} }] }, 400, cancelled),
    ).toEqual({
      kind: 'write',
      units: 4,
      items: 2,
      estimated: true,
      raised: false,
    });
  });

  it('counts nothing for other failures', () => {
    const throttled = { __type: 'com.amazonaws.dynamodb.v20120810#ThrottlingException' };
    expect(meter('PutItem', {}, 400, throttled)).toEqual({
      kind: 'write',
      units: 0,
      items: 0,
      estimated: false,
      raised: false,
    });
    expect(meter('GetItem', {}, 502, undefined)).toEqual({
      kind: 'read',
      units: 0,
      items: 0,
      estimated: false,
      raised: false,
    });
  });
});

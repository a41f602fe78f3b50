/**
 * The `SWEEPER/COUNTS` item: tunnels by state and type, one number attribute each (`up_reverse`).
 * A full pass sets them all; every change between full passes moves one tunnel with an atomic ADD
 * (the sweeper's transitions and first records, the API's deletes), so any process reads the whole
 * picture in one item read instead of reading every tunnel. Best effort between full passes: a
 * move lost to a crash is set right by the next full pass.
 */
import type { UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { type TunnelStateName, TunnelStateNameSchema } from '../schemas';
import type { TunnelCount, TunnelType } from './status-store';
import { keys } from './table';

const TUNNEL_TYPES: readonly TunnelType[] = ['reverse', 'standard'];

const attributeOf = (state: TunnelStateName, type: TunnelType) => `${state}_${type}`;

/** The item a full pass writes: every state and type, 0 where no tunnel is. */
export function countsItem(counts: readonly TunnelCount[], at: number): Record<string, unknown> {
  const item: Record<string, unknown> = { ...keys.tunnelCounts(), setAt: at };
  for (const state of TunnelStateNameSchema.options) {
    for (const type of TUNNEL_TYPES) item[attributeOf(state, type)] = 0;
  }
  for (const { state, type, count } of counts) {
    const attribute = attributeOf(state, type);
    item[attribute] = Number(item[attribute] ?? 0) + count;
  }
  return item;
}

/**
 * The counts an item holds: none until a full pass has set them (moves alone are not a count); a
 * count moved below 0 (a move the full pass had already seen) reads 0.
 */
export function countsOf(item: Record<string, unknown> | undefined): TunnelCount[] {
  if (typeof item?.setAt !== 'number') return [];
  return TunnelStateNameSchema.options.flatMap((state) =>
    TUNNEL_TYPES.map((type) => {
      const value = item[attributeOf(state, type)];
      return { state, type, count: typeof value === 'number' && value > 0 ? value : 0 };
    }),
  );
}

/** Moves one tunnel between states; undefined when there is nothing to move. */
export function moveCountUpdate(
  tableName: string,
  type: TunnelType,
  from: TunnelStateName | undefined,
  to: TunnelStateName | undefined,
): UpdateCommandInput | undefined {
  if (from === to) return undefined;
  const adds: string[] = [];
  const names: Record<string, string> = {};
  const values: Record<string, number> = {};
  if (from) {
    adds.push('#from :minus');
    names['#from'] = attributeOf(from, type);
    values[':minus'] = -1;
  }
  if (to) {
    adds.push('#to :plus');
    names['#to'] = attributeOf(to, type);
    values[':plus'] = 1;
  }
  return {
    TableName: tableName,
    Key: keys.tunnelCounts(),
    UpdateExpression: `ADD ${adds.join(', ')}`,
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}

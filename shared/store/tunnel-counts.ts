/**
 * The `SWEEPER/COUNTS` item: tunnels by state and type, one number attribute each (`up_reverse`).
 * A full pass sets them all; every change between full passes moves one tunnel with an atomic ADD
 * (the sweeper's transitions and first records, the API's deletes), so any process reads the whole
 * picture in one item read instead of reading every tunnel. Best effort between full passes: a
 * move lost to a crash is set right by the next full pass.
 */
import type { UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { type TunnelStateName, TunnelStateNameSchema } from '../schemas';
import { TUNNEL_TYPES, type TunnelType } from '../tunnel';
import type { TunnelCount } from './status-store';
import { keys } from './table';

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

/** Tunnels moved into (`by` > 0) or out of (`by` < 0) a state. */
export interface CountMove {
  state: TunnelStateName;
  type: TunnelType;
  by: number;
}

/** The moves of one tunnel from `from` (absent: new) to `to` (absent: deleted). */
export function movesOf(
  type: TunnelType,
  from: TunnelStateName | undefined,
  to: TunnelStateName | undefined,
): CountMove[] {
  if (from === to) return [];
  return [...(from ? [{ state: from, type, by: -1 }] : []), ...(to ? [{ state: to, type, by: 1 }] : [])];
}

/** One update applying every move at once (summed per state); undefined when they cancel out. */
export function moveCountsUpdate(
  tableName: string,
  moves: readonly CountMove[],
): UpdateCommandInput | undefined {
  const sums = new Map<string, number>();
  for (const { state, type, by } of moves) {
    const attribute = attributeOf(state, type);
    sums.set(attribute, (sums.get(attribute) ?? 0) + by);
  }
  const changed = [...sums].filter(([, by]) => by !== 0);
  if (changed.length === 0) return undefined;
  return {
    TableName: tableName,
    Key: keys.tunnelCounts(),
    UpdateExpression: `ADD ${changed.map((_, i) => `#a${i} :v${i}`).join(', ')}`,
    ExpressionAttributeNames: Object.fromEntries(changed.map(([attribute], i) => [`#a${i}`, attribute])),
    ExpressionAttributeValues: Object.fromEntries(changed.map(([, by], i) => [`:v${i}`, by])),
  };
}

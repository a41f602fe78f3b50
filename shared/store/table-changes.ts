/**
 * Which tunnels a batch of the table's stream records concerns: a write to a tunnel's STATE item (a
 * worker recorded a connection's state) or META item (the API changed or created the tunnel) can
 * change its status; the sweeper's own STATUS and EVENT writes, heartbeats and the rest cannot.
 * In AWS the records come to the sweeper Lambda (an event source on the stream); in `npm start`
 * the sweeper thread follows the same stream of DynamoDB Local (local/table-stream.ts).
 */

/** The key of one stream record, as plain strings (`{ pk: { S: ... } }` in the wire format). */
export interface ChangedKey {
  pk?: string;
  sk?: string;
}

const STATUS_INPUTS = new Set(['STATE', 'META']);
const TUNNEL_PREFIX = 'TUNNEL#';

/** The tunnels whose status inputs the records changed, each once, in order of first mention. */
export function changedTunnels(keys: Iterable<ChangedKey>): string[] {
  const ids = new Set<string>();
  for (const { pk, sk } of keys) {
    if (pk?.startsWith(TUNNEL_PREFIX) && sk && STATUS_INPUTS.has(sk)) ids.add(pk.slice(TUNNEL_PREFIX.length));
  }
  return [...ids];
}

/** A stream record's keys in the wire format (`dynamodb.Keys`), read without trusting their shape. */
export function keyOfRecord(keys: unknown): ChangedKey {
  const attr = (name: string): string | undefined => {
    if (typeof keys !== 'object' || keys === null) return undefined;
    const value: unknown = Reflect.get(keys, name);
    if (typeof value !== 'object' || value === null) return undefined;
    const s: unknown = Reflect.get(value, 'S');
    return typeof s === 'string' ? s : undefined;
  };
  const key: ChangedKey = {};
  const pk = attr('pk');
  const sk = attr('sk');
  if (pk !== undefined) key.pk = pk;
  if (sk !== undefined) key.sk = sk;
  return key;
}

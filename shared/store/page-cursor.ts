/** Opaque listing cursors: a page's last key, base64url JSON, checked by `schema` when it comes back. */
import type { z } from 'zod';
import { ValidationError } from '../errors';

export function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** The key a cursor names; a `cursor` field error for anything this listing did not hand out. */
export function decodeCursor<S extends z.ZodType>(cursor: string, schema: S): z.infer<S> {
  try {
    return schema.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
  } catch (err) {
    throw ValidationError.field('cursor', 'is not a cursor returned by this listing', { cause: err });
  }
}

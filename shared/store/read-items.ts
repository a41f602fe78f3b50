/**
 * The one policy for stored items that do not read back (a hand edit, a bug, a version skew): the
 * item is set aside with the reason, everything read with it is still served, and the caller logs
 * which item it was. Nothing stored can make a whole read fail.
 */
import { z } from 'zod';

/** An item that failed validation: which tunnel, which of its items, and why (field paths only). */
export interface UnreadableItem {
  id: string;
  item: string;
  reason: string;
}

/** A stored item of a kind that could not be read. */
export class UnreadableItemError extends Error {
  override name = 'UnreadableItemError';
  constructor(
    readonly unreadable: UnreadableItem,
    /** What could still be read of it (to delete it, for instance). */
    readonly salvaged: { workspaceId?: string; port?: number },
  ) {
    super(`stored ${unreadable.item} item of ${unreadable.id} cannot be read: ${unreadable.reason}`);
  }
}

const MAX_ISSUES = 3;

/** Why `error` rejected an item: paths and messages only, never the stored values. */
export function unreadableReason(error: z.ZodError): string {
  const issues = error.issues
    .slice(0, MAX_ISSUES)
    .map((i) => `${i.path.join('.') || '(item)'}: ${i.message}`);
  const more = error.issues.length - MAX_ISSUES;
  return more > 0 ? `${issues.join('; ')}; and ${more} more` : issues.join('; ');
}

/** Validates each item; those that fail are returned apart, named by `idOf`. */
export function readEach<T>(
  items: Record<string, unknown>[],
  schema: z.ZodType<T>,
  idOf: (item: Record<string, unknown>) => { id: string; item: string },
): { read: T[]; unreadable: UnreadableItem[] } {
  const read: T[] = [];
  const unreadable: UnreadableItem[] = [];
  for (const raw of items) {
    const parsed = schema.safeParse(raw);
    if (parsed.success) read.push(parsed.data);
    else unreadable.push({ ...idOf(raw), reason: unreadableReason(parsed.error) });
  }
  return { read, unreadable };
}

const SalvageSchema = z.object({
  workspaceId: z.string().optional().catch(undefined),
  port: z.number().int().optional().catch(undefined),
});

/** The id a `TUNNEL#<id>` key names, and what can still be read of an unreadable tunnel item. */
export function tunnelIdOf(item: Record<string, unknown>): { id: string; item: string } {
  const pk = typeof item.pk === 'string' ? item.pk : '';
  return { id: pk.startsWith('TUNNEL#') ? pk.slice('TUNNEL#'.length) : pk, item: String(item.sk ?? '?') };
}

export function salvage(item: Record<string, unknown>): { workspaceId?: string; port?: number } {
  const parsed = SalvageSchema.safeParse(item);
  if (!parsed.success) return {};
  const out: { workspaceId?: string; port?: number } = {};
  if (parsed.data.workspaceId !== undefined) out.workspaceId = parsed.data.workspaceId;
  if (parsed.data.port !== undefined) out.port = parsed.data.port;
  return out;
}

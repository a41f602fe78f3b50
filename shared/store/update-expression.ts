/** Building DynamoDB update expressions that replace a set of an item's fields. */

export interface UpdateParts {
  set: string[];
  remove: string[];
  names: Record<string, string>;
  values: Record<string, unknown>;
}

/**
 * Makes `fields` of the stored item equal to `source`'s: SET those present, REMOVE those absent.
 * Other attributes of the item are left as they are. Callers may add their own parts.
 */
export function replaceFields(fields: readonly string[], source: Record<string, unknown>): UpdateParts {
  const parts: UpdateParts = { set: [], remove: [], names: {}, values: {} };
  for (const field of fields) {
    parts.names[`#${field}`] = field;
    const value = source[field];
    if (value === undefined) parts.remove.push(`#${field}`);
    else {
      parts.set.push(`#${field} = :${field}`);
      parts.values[`:${field}`] = value;
    }
  }
  return parts;
}

/** The `UpdateExpression` of these parts (at least one SET). */
export function updateExpression({ set, remove }: UpdateParts): string {
  return `SET ${set.join(', ')}${remove.length > 0 ? ` REMOVE ${remove.join(', ')}` : ''}`;
}

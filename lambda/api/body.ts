/**
 * Request parsing: bodies are read as text and parsed here whatever the Content-Type, so malformed
 * JSON is always a 400 and a wrong shape always a 422 naming each field.
 */
import type { Context } from 'hono';
import type { z } from 'zod';
import { ValidationError } from '../../shared/errors';
import { ApiError, fieldIssues } from './errors';

export async function readJson<S extends z.ZodType>(
  c: Context,
  schema: S,
  options: { optional?: boolean } = {},
): Promise<z.infer<S>> {
  const text = await c.req.text();
  let data: unknown = {};
  if (text.trim() !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      // JSON.parse's message quotes the input, which may hold a key: say only what is wrong.
      throw new ApiError(400, 'invalid_json', 'request body is not valid JSON');
    }
  } else if (!options.optional) {
    throw new ApiError(400, 'invalid_json', 'request body is empty; send a JSON object');
  }
  return parseWith(schema, data);
}

export function parseWith<S extends z.ZodType>(schema: S, data: unknown): z.infer<S> {
  const result = schema.safeParse(data);
  if (!result.success) throw new ValidationError(fieldIssues(result.error));
  return result.data;
}

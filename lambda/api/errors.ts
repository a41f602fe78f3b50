/**
 * One place that turns errors into the contract's error body. Domain errors map to their 4xx;
 * anything else is logged with its stack and becomes a plain 500 that says nothing internal.
 */
import type { Context, ErrorHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';
import {
  ConflictError,
  type FieldIssue,
  NotFoundError,
  OverloadedError,
  QuotaExceededError,
  SecretStoreUnavailableError,
  SecretThrottledError,
  StorageUnavailableError,
  ValidationError,
} from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import { UnreadableItemError } from '../../shared/store/read-items';

export type ErrorCode =
  | 'invalid_json'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'quota_exceeded'
  | 'payload_too_large'
  | 'validation_failed'
  | 'rate_limited'
  | 'unavailable'
  | 'internal_error';

/** How long a client should wait before retrying after an outage of our storage. */
const STORAGE_RETRY_AFTER_S = 5;

/** An error that already knows its HTTP answer. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export function errorResponse(
  c: Context,
  status: ContentfulStatusCode,
  code: ErrorCode,
  message: string,
  details?: unknown,
): Response {
  const error: { code: ErrorCode; message: string; details?: unknown } = { code, message };
  if (details !== undefined) error.details = details;
  return c.json({ error }, status);
}

/** zod issues as `{path, message}` with dotted paths, the shape of `details` for 422. */
export function fieldIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.flatMap((issue): FieldIssue[] => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        path: [...issue.path.map(String), key.slice(0, 64)].join('.'),
        message: 'is not a known field',
      }));
    }
    if (issue.code === 'invalid_type' && issue.input === undefined) return [{ path, message: 'is required' }];
    return [{ path, message: issue.message }];
  });
}

export function createErrorHandler(logger: Logger): ErrorHandler {
  return (err, c) => {
    if (err instanceof ApiError) {
      for (const [k, v] of Object.entries(err.headers ?? {})) c.header(k, v);
      return errorResponse(c, err.status, err.code, err.message, err.details);
    }
    if (err instanceof ValidationError) {
      return errorResponse(c, 422, 'validation_failed', 'the request has invalid fields', err.issues);
    }
    if (err instanceof NotFoundError) return errorResponse(c, 404, 'not_found', err.message);
    if (err instanceof QuotaExceededError) {
      return errorResponse(c, 409, 'quota_exceeded', err.message, { limit: err.limit, max: err.max });
    }
    if (err instanceof ConflictError) return errorResponse(c, 409, 'conflict', err.message);
    if (err instanceof HTTPException && err.status < 500) {
      return errorResponse(c, err.status as ContentfulStatusCode, 'invalid_json', err.message);
    }
    if (err instanceof SecretThrottledError) {
      logger.warn('secret store throttled', { err, path: c.req.path });
      c.header('Retry-After', '1');
      return errorResponse(c, 503, 'unavailable', 'temporarily overloaded; retry shortly');
    }
    if (err instanceof StorageUnavailableError || err instanceof SecretStoreUnavailableError) {
      const dependency = err instanceof StorageUnavailableError ? 'table' : 'secret store';
      logger.warn('storage unavailable', { dependency, reason: err.reason, err, path: c.req.path });
      c.header('Retry-After', String(STORAGE_RETRY_AFTER_S));
      return errorResponse(
        c,
        503,
        'unavailable',
        `the ${dependency} is unavailable (${err.reason}); retry shortly`,
        {
          dependency,
          reason: err.reason,
        },
      );
    }
    if (err instanceof UnreadableItemError) {
      // Stored data we cannot read is a fault of ours: logged with the item, said plainly.
      logger.error('stored item unreadable', { ...err.unreadable, path: c.req.path });
      return errorResponse(
        c,
        500,
        'internal_error',
        `tunnel ${err.unreadable.id} is stored in a form that cannot be read (${err.unreadable.reason}); ` +
          'it has been logged for the operators; DELETE still removes it',
        { id: err.unreadable.id, item: err.unreadable.item },
      );
    }
    if (err instanceof OverloadedError) {
      logger.warn('request shed: overloaded', { resource: err.resource, path: c.req.path });
      c.header('Retry-After', String(err.retryAfterSeconds));
      return errorResponse(c, 503, 'unavailable', 'temporarily overloaded; retry shortly');
    }
    logger.error('unhandled error', { err, method: c.req.method, path: c.req.path });
    return errorResponse(c, 500, 'internal_error', 'internal error; it has been logged');
  };
}

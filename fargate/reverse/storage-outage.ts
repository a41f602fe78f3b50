/**
 * Whether a failed storage call is an outage (the database could not be reached or answered with a
 * fault of its own, worth serving from what we remember and retrying later) rather than an answer
 * (a condition that did not hold, a request we built wrong, an item that does not parse), which no
 * cached copy should paper over.
 */

/** Error names of the AWS SDK (and Node) for throttling, server faults and requests without an answer. */
const OUTAGE_NAMES = new Set([
  'StorageOutage',
  'TimeoutError',
  'AbortError',
  'RequestTimeout',
  'RequestTimeoutException',
  'ThrottlingException',
  'Throttling',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'InternalServerError',
  'InternalFailure',
  'InternalError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

/** Socket-level failures: nothing answered. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

export function isStorageOutage(err: unknown, depth = 0): boolean {
  if (!(err instanceof Error) || depth > 4) return false;
  if (OUTAGE_NAMES.has(err.name)) return true;
  const { code, $metadata, $fault } = err as {
    code?: unknown;
    $metadata?: { httpStatusCode?: unknown };
    $fault?: unknown;
  };
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  const status = $metadata?.httpStatusCode;
  if (typeof status === 'number' && status >= 500) return true;
  if ($fault === 'server') return true;
  return isStorageOutage(err.cause, depth + 1);
}

/** An outage of our own finding (a read past its deadline, too many reads waiting). */
export function storageOutage(message: string): Error {
  const err = new Error(message);
  err.name = 'StorageOutage';
  return err;
}

/**
 * Telling an outage of the table from an answer: the failures that mean "storage cannot be reached,
 * is overloaded, or is failing" (retry later: 503 in the API, keep serving in the gateway), and a
 * process-wide record of when the table last failed, so readers can tell a heartbeat that was not
 * written because of an outage from one that stopped because its worker died.
 */
import {
  SecretStoreUnavailableError,
  StorageUnavailableError,
  type StorageUnavailableReason,
} from '../errors';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
]);
const THROTTLING = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
]);
// DynamoDB's and Secrets Manager's names for "failing on our side, retry".
const FAILING = new Set([
  'InternalServerError',
  'InternalFailure',
  'InternalServiceError',
  'ServiceUnavailable',
]);
// SQLite under DynamoDB Local says so when its disk is full; DynamoDB itself never runs out of disk.
const DISK_FULL = /disk is full|SQLITE_FULL|No space left on device|ENOSPC/i;

/** Why a storage call failed, when it failed because storage is unavailable; undefined otherwise. */
export function outageReason(err: unknown): StorageUnavailableReason | undefined {
  if (err instanceof StorageUnavailableError || err instanceof SecretStoreUnavailableError) return err.reason;
  if (!(err instanceof Error)) return undefined;
  const { name, message } = err;
  const code = 'code' in err && typeof err.code === 'string' ? err.code : undefined;
  const status = statusOf(err);
  if (DISK_FULL.test(message)) return 'full';
  if (THROTTLING.has(name)) return 'throttled';
  if (FAILING.has(name) || (status !== undefined && status >= 500)) return 'failing';
  if (name === 'TimeoutError' || (code !== undefined && NETWORK_CODES.has(code))) return 'unreachable';
  if (/socket hang up|ECONNREFUSED|ECONNRESET|EPIPE/.test(message)) return 'unreachable';
  return undefined;
}

function statusOf(err: Error): number | undefined {
  if (!('$metadata' in err)) return undefined;
  const metadata = err.$metadata;
  if (typeof metadata !== 'object' || metadata === null || !('httpStatusCode' in metadata)) return undefined;
  return typeof metadata.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

/**
 * The table's health as one process has seen it through its own calls: when the latest failure of
 * an outage kind happened, and when calls succeeded again after it.
 */
export class StorageHealth {
  private lastFailureAt: number | undefined;
  private lastReason: StorageUnavailableReason | undefined;
  private recoveredAt: number | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  succeeded(): void {
    if (this.lastFailureAt !== undefined && this.recoveredAt === undefined) this.recoveredAt = this.now();
  }

  failed(reason: StorageUnavailableReason): void {
    this.lastFailureAt = this.now();
    this.lastReason = reason;
    this.recoveredAt = undefined;
  }

  /** Whether the latest call failed with an outage; with the reason. */
  get outage(): { since: number; reason: StorageUnavailableReason } | undefined {
    if (this.lastFailureAt === undefined || this.recoveredAt !== undefined || !this.lastReason)
      return undefined;
    return { since: this.lastFailureAt, reason: this.lastReason };
  }

  /**
   * Since when this process has seen the table answer without a gap (epoch ms); undefined when it
   * never saw it fail. While it is failing: now (nothing it reads is older than its gap).
   */
  get observingSince(): number | undefined {
    if (this.lastFailureAt === undefined) return undefined;
    return this.recoveredAt ?? this.now();
  }
}

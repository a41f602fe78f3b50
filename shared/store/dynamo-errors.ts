import { randomInt } from 'node:crypto';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';

/** A conditional write whose condition did not hold: an answer, not a fault. */
export function isConditionalFailure(err: unknown): boolean {
  return err instanceof Error && err.name === 'ConditionalCheckFailedException';
}

/** A transaction cancelled because the condition of its `index`th item did not hold. */
export function cancelledBy(err: unknown, index: number): boolean {
  return (
    err instanceof TransactionCanceledException &&
    err.CancellationReasons?.[index]?.Code === 'ConditionalCheckFailed'
  );
}

/** A transaction cancelled because another one touched the same items at once: worth a retry. */
export function isTransactionConflict(err: unknown): boolean {
  return (
    err instanceof TransactionCanceledException &&
    (err.CancellationReasons ?? []).some((r) => r.Code === 'TransactionConflict')
  );
}

/** A short jittered pause before retrying a write that collided with a concurrent one. */
export function jitteredPause(attempt: number): Promise<void> {
  const cap = Math.min(500, 20 * 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, randomInt(Math.floor(cap / 2), cap + 1)));
}

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

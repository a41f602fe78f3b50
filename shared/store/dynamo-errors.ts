/** A conditional write whose condition did not hold: an answer, not a fault. */
export function isConditionalFailure(err: unknown): boolean {
  return err instanceof Error && err.name === 'ConditionalCheckFailedException';
}

/**
 * The acknowledgments of cdk/lib/nag.ts, checked against the stack's raw findings: with none
 * applied, cdk-nag reports exactly the acknowledged findings, each on the acknowledged construct.
 * An acknowledgment that no longer matches a finding (the cause was fixed, or moved) fails here,
 * as does any new finding.
 */
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it, vi } from 'vitest';
import { nagAcknowledgments } from '../../../cdk/lib/nag';
import { buildStack } from '../../helpers/cdk';

vi.mock('../../../cdk/lib/nag', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../cdk/lib/nag')>()),
  acknowledgeNagFindings: () => {},
}));

describe('cdk-nag acknowledgments', () => {
  it('match the raw findings one for one', () => {
    const { app, stack } = buildStack();
    const raw = new AwsSolutionsChecks()
      .validateScope(app)
      .violations.flatMap((v) =>
        v.violatingResources.map(
          (r) => `${v.ruleName} @ ${(r.constructPath ?? '').replace(/^Tunnelkeeper\//, '')}`,
        ),
      );
    const acknowledged = nagAcknowledgments(stack).filter(({ id }) => id.startsWith('AwsSolutions-'));
    expect(raw).toHaveLength(acknowledged.length);
    // Findings sit on the L1 resource (`.../Resource` or a role's `DefaultPolicy/Resource`) below
    // the construct that carries the acknowledgment.
    for (const { id, path } of acknowledged) {
      const match = raw.find((finding) => finding.startsWith(`${id} @ ${path}/`));
      expect(match, `${id} on ${path}`).toBeDefined();
    }
  });
});

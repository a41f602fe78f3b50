/**
 * cdk-nag's AwsSolutions checks over the stack (issue 6, acceptance 3): no finding is left that is
 * neither fixed nor acknowledged, and every acknowledgment carries a written reason. The synth
 * check runs the checks the way `npm run synth` does, with CDK's own CloudFormation validation.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { nagAcknowledgments } from '../../../cdk/lib/nag';
import { buildStack } from '../../helpers/cdk';

describe('cdk-nag AwsSolutions', () => {
  it('finds nothing unacknowledged: no errors, no warnings', () => {
    const { app } = buildStack();
    const report = new AwsSolutionsChecks().validateScope(app);
    const findings = report.violations.map(
      (v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
    );
    expect(findings).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('passes the synth with the checks and CloudFormation validation registered, as the app does', async () => {
    const outdir = await mkdtemp(join(tmpdir(), 'tk-cdk-nag-'));
    try {
      const { app } = buildStack({ outdir });
      Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
      expect(() => app.synth()).not.toThrow();
    } finally {
      await rm(outdir, { recursive: true, force: true });
    }
  });

  it('explains every acknowledgment in a sentence of its own', () => {
    const { stack } = buildStack();
    const acknowledgments = nagAcknowledgments(stack);
    expect(acknowledgments.length).toBeGreaterThan(0);
    for (const { id, reason } of acknowledgments) {
      expect(reason.length, id).toBeGreaterThanOrEqual(60);
      expect(reason, id).not.toMatch(/^(n\/a|todo|tbd|ok|none)\b/i);
    }
  });

  it('records each acknowledgment with its reason on the construct it concerns', () => {
    const { stack } = buildStack();
    for (const { path, id, reason } of nagAcknowledgments(stack)) {
      const construct = stack.node.findChild(path.split('/')[0] as string);
      const target = path
        .split('/')
        .slice(1)
        .reduce((node, part) => node.node.findChild(part), construct);
      const recorded = target.node.metadata
        .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .map((entry) => entry.data as Record<string, string>);
      // CDK files rule ids without a plugin namespace under `Annotation::`, which cdk-nag reads.
      const matching = recorded.filter((data) =>
        Object.entries(data).some(
          ([key, text]) => (key === id || key === `Annotation::${id}`) && text === reason,
        ),
      );
      expect(matching, `${path} ${id}`).toHaveLength(1);
    }
  });
});

/**
 * The CDK app as tests build it: the context of `cdk.json` (what `npm run synth` deploys) plus
 * overrides, and by default no bundling (`aws:cdk:bundling-stacks: []`), so a template test takes
 * a second. The one test that really bundles passes `bundle: true`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { REPO_ROOT } from '../../cdk/lib/bundles';
import { parseSettings } from '../../cdk/lib/settings';
import { STACK_NAME, TunnelkeeperStack } from '../../cdk/lib/tunnelkeeper-stack';

export const CDK_JSON_CONTEXT: Record<string, unknown> = JSON.parse(
  readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8'),
).context;

export interface SynthOptions {
  context?: Record<string, unknown>;
  bundle?: boolean;
  outdir?: string;
}

export function buildStack(options: SynthOptions = {}) {
  const context = { ...CDK_JSON_CONTEXT, ...options.context };
  const app = new App({
    outdir: options.outdir,
    context: options.bundle ? context : { ...context, 'aws:cdk:bundling-stacks': [] },
  });
  const stack = new TunnelkeeperStack(app, STACK_NAME, { settings: parseSettings(context) });
  return { app, stack };
}

export function synthTemplate(options: SynthOptions = {}) {
  const { app, stack } = buildStack(options);
  return { app, stack, template: Template.fromStack(stack) };
}

/** `Ref`/`Fn::GetAtt` of a logical id, as CloudFormation JSON. */
export const ref = (logicalId: string) => ({ Ref: logicalId });
export const getAtt = (logicalId: string, attribute: string) => ({ 'Fn::GetAtt': [logicalId, attribute] });

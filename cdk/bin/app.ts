/**
 * The CDK app: settings from context, one stack, cdk-nag's AwsSolutions checks on every synth (a
 * finding that is neither fixed nor acknowledged with a reason fails the synth).
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseSettings } from '../lib/settings';
import { STACK_NAME, TunnelkeeperStack } from '../lib/tunnelkeeper-stack';

const app = new App();
const settings = parseSettings(app.node.getAllContext());
new TunnelkeeperStack(app, STACK_NAME, {
  settings,
  description: 'Tunnelkeeper: SSH tunnels (HTTP API, reverse-tunnel gateway, status sweeper)',
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();

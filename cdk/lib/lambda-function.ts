/**
 * Every Lambda of the stack is built the same way: NodejsFunction bundling on this machine with the
 * local esbuild (never Docker), arm64, Node 22, the options in `bundles.ts`, and a log group of its
 * own with a retention.
 */
import { dirname, join } from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { ISecurityGroup, IVpc, SubnetSelection } from 'aws-cdk-lib/aws-ec2';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import {
  CONSOLE_BUNDLE_DIR,
  consoleBuildCommand,
  ESM_SHIM_BANNER,
  LAMBDA_ENTRIES,
  LAMBDA_EXTERNALS,
  type LambdaBundleName,
  lambdaBundleCopies,
  MAIN_FIELDS,
  NODE_TARGET,
  REPO_ROOT,
  shellQuote,
} from './bundles';

/** Node 22 as DESIGN.md fixes it: the runtime the bundles target and the gateway image runs. */
export const LAMBDA_RUNTIME = Runtime.NODEJS_22_X;

export interface TunnelkeeperFunctionProps {
  bundle: LambdaBundleName;
  description: string;
  environment: Record<string, string>;
  memorySize: number;
  timeout: Duration;
  vpc?: IVpc;
  vpcSubnets?: SubnetSelection;
  securityGroups?: ISecurityGroup[];
  /** Asynchronous invocations (schedules, CloudFormation): retried or not. */
  retryAttempts?: number;
  /** At most this many invocations at once (unset: the account's unreserved pool). */
  reservedConcurrentExecutions?: number;
}

export function tunnelkeeperFunction(scope: Construct, id: string, props: TunnelkeeperFunctionProps) {
  const logGroup = new LogGroup(scope, `${id}Logs`, {
    retention: RetentionDays.ONE_MONTH,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const fn = new NodejsFunction(scope, id, {
    entry: join(REPO_ROOT, LAMBDA_ENTRIES[props.bundle]),
    handler: 'handler',
    projectRoot: REPO_ROOT,
    depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
    runtime: LAMBDA_RUNTIME,
    architecture: Architecture.ARM_64,
    description: props.description,
    memorySize: props.memorySize,
    timeout: props.timeout,
    environment: props.environment,
    logGroup,
    vpc: props.vpc,
    vpcSubnets: props.vpcSubnets,
    securityGroups: props.securityGroups,
    retryAttempts: props.retryAttempts,
    reservedConcurrentExecutions: props.reservedConcurrentExecutions,
    bundling: {
      format: OutputFormat.ESM,
      target: NODE_TARGET,
      minify: true,
      sourceMap: false,
      externalModules: LAMBDA_EXTERNALS,
      banner: ESM_SHIM_BANNER,
      mainFields: MAIN_FIELDS,
      forceDockerBundling: false,
      commandHooks: {
        beforeBundling: () => [],
        beforeInstall: () => [],
        // Run by bash in the repository (local bundling); buildBundle copies the same files.
        afterBundling: (inputDir, outputDir) => [
          ...lambdaBundleCopies(props.bundle).map(
            ({ from, to }) =>
              `mkdir -p ${shellQuote(dirname(join(outputDir, to)))} && ` +
              `cp ${shellQuote(join(inputDir, from))} ${shellQuote(join(outputDir, to))}`,
          ),
          // The API serves the customer console from these files (built offline, in a second).
          ...(props.bundle === 'api' ? [consoleBuildCommand(join(outputDir, CONSOLE_BUNDLE_DIR))] : []),
        ],
      },
    },
  });
  return { fn, logGroup };
}

/** HTTP API integrations time out at 30 s; the function gives up just before. */
export const API_TIMEOUT = Duration.seconds(29);

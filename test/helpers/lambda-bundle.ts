/**
 * Deployable Lambda bundles under test: built with the stack's esbuild options, imported as
 * Lambda would import them, configured with the environment the stack gives the function.
 *
 * Bundles are written below `node_modules/.cache/`: `@aws-sdk/*` stays external (the Lambda
 * runtime provides it), so the bundle must resolve the SDK from this repository's node_modules,
 * the very module instance the test mocks.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CfnElement } from 'aws-cdk-lib';
import { Stack } from 'aws-cdk-lib';
import type { LambdaEvent } from 'hono/aws-lambda';
import { type BuiltBundle, buildBundle, type LambdaBundleName, REPO_ROOT } from '../../cdk/lib/bundles';
import { synthTemplate } from './cdk';

export async function buildTestBundle(
  name: LambdaBundleName,
): Promise<BuiltBundle & { dispose(): Promise<void> }> {
  const outdir = join(
    REPO_ROOT,
    'node_modules',
    '.cache',
    'tunnelkeeper-test-bundles',
    `${name}-${randomBytes(4).toString('hex')}`,
  );
  const built = await buildBundle(name, outdir);
  return { ...built, dispose: () => rm(outdir, { recursive: true, force: true }) };
}

/** `import()` of the bundle file, as the Lambda runtime loads an ESM handler. */
export async function importBundle<T>(file: string): Promise<T> {
  return (await import(pathToFileURL(file).href)) as T;
}

/**
 * The environment the synthesized stack gives a function, with each deploy-time token (a table
 * name, a topic ARN, the NLB's DNS name) replaced by the value in `tokens`; a token without a
 * replacement throws, so a new variable cannot slip through unnoticed.
 */
export function stackFunctionEnvironment(
  bundle: LambdaBundleName,
  tokens: Record<string, string>,
): Record<string, string> {
  const { stack, template } = synthTemplate();
  const fn = { api: stack.api.fn, sweeper: stack.sweeper.fn, 'connect-targets': stack.connectTargets.fn }[
    bundle
  ];
  const id = Stack.of(fn).getLogicalId(fn.node.defaultChild as CfnElement);
  const variables: Record<string, unknown> = template.toJSON().Resources[id].Properties.Environment.Variables;
  return Object.fromEntries(
    Object.entries(variables).map(([key, value]) => {
      if (typeof value === 'string') return [key, value];
      const replacement = tokens[key];
      if (replacement === undefined) throw new Error(`${bundle} environment: no test value for token ${key}`);
      return [key, replacement];
    }),
  );
}

/** An API Gateway HTTP API (payload 2.0) event on the `$default` stage, as the service sends it. */
export function httpApiEvent(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; query?: string } = {},
): LambdaEvent {
  const headers: Record<string, string> = {
    host: 'abc123.execute-api.eu-west-1.amazonaws.com',
    'user-agent': 'vitest',
    'x-forwarded-for': '203.0.113.7',
    'x-forwarded-proto': 'https',
  };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const now = new Date();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: options.query ?? '',
    headers,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      authentication: null,
      authorizer: {},
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'vitest' },
      requestId: `req-${randomBytes(6).toString('hex')}`,
      routeKey: '$default',
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    isBase64Encoded: false,
  } as LambdaEvent;
}

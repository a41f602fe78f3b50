/**
 * The deployable Lambda bundles, run (issue 6, acceptance 4): built with the stack's esbuild
 * options, imported as Lambda imports them, configured with the environment the stack sets, and
 * pointed at DynamoDB Local; Secrets Manager and SNS are mocked on the very SDK module instance
 * the bundles import (`@aws-sdk/*` stays external, as the Lambda runtime provides it).
 */
import {
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import type { LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it, type MockInstance, vi } from 'vitest';
import { API_BUNDLE_PACKAGE_FILES, CONSOLE_BUNDLE_DIR, type LambdaBundleName } from '../../cdk/lib/bundles';
import type { SweepReport } from '../../lambda/sweeper/sweep';
import { newAdminToken } from '../../shared/ids';
import { AlertSchema, ServiceInfoSchema, TunnelSchema } from '../../shared/schemas';
import { keys } from '../../shared/store/table';
import { createTestTable } from '../helpers/dynamo';
import { gatewaySim, storeTunnels } from '../helpers/gateway-sim';
import {
  buildTestBundle,
  httpApiEvent,
  importBundle,
  stackFunctionEnvironment,
} from '../helpers/lambda-bundle';
import { FakeSecrets } from '../helpers/secrets-manager-fake';
import { captureStdout } from '../helpers/stdout';

type Table = Awaited<ReturnType<typeof createTestTable>>;
type Bundle = Awaited<ReturnType<typeof buildTestBundle>>;
interface LambdaResult {
  statusCode: number;
  body: string;
  headers?: Record<string, string>;
}
type ApiHandler = (event: LambdaEvent, context: object) => Promise<LambdaResult>;
type SweeperHandler = (
  event: unknown,
  context: { getRemainingTimeInMillis(): number },
) => Promise<SweepReport>;

const MiB = 1024 * 1024;
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:Tunnelkeeper-Alerts';
const PUBLIC_SSH_HOST = 'tunnels.example.com';
const EGRESS_IPS = ['198.51.100.1', '198.51.100.2'];
const CONNECT_HOSTS = '20000-20049=connect-1.internal,20050-20099=connect-2.internal';
const ELB = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012';
const GATEWAY_GROUP = `${ELB}:targetgroup/Tunnel-Gatew-0AAAAAAAAAAA/0123456789abcdef`;
const CONNECT_LBS = [`${ELB}:loadbalancer/net/Tunnel-Conne-1/aaaaaaaaaaaaaaaa`];

let table: Table;
let stdout: MockInstance | undefined;
const logs: string[] = [];

/** Sets the function's environment as the stack would, on this table and DynamoDB Local. */
function stubStackEnvironment(bundle: LambdaBundleName): Record<string, string> {
  const env = stackFunctionEnvironment(bundle, {
    TABLE_NAME: table.tableName,
    PUBLIC_SSH_HOST,
    ALERT_TOPIC_ARN: TOPIC,
    EGRESS_IPS: EGRESS_IPS.join(','),
    CONNECT_HOSTS: CONNECT_HOSTS,
    GATEWAY_TARGET_GROUP_ARN: GATEWAY_GROUP,
    CONNECT_LOAD_BALANCER_ARNS: CONNECT_LBS.join(','),
  });
  for (const [key, value] of Object.entries(env)) vi.stubEnv(key, value);
  // What Lambda and the test setup add: region, credentials, and the local endpoint.
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIAFAKEFAKEFAKEFAKE');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'fake-secret-access-key');
  vi.stubEnv('DYNAMODB_ENDPOINT', table.endpoint);
  return env;
}

beforeAll(async () => {
  table = await createTestTable();
  stdout = captureStdout(logs);
});

afterAll(async () => {
  stdout?.mockRestore();
  vi.unstubAllEnvs();
  await table?.drop();
});

describe('API Lambda bundle', () => {
  let bundle: Bundle;
  let handler: ApiHandler;
  const secrets = new FakeSecrets();
  let smMock: ReturnType<FakeSecrets['mockClients']>;
  let env: Record<string, string>;
  const adminToken = newAdminToken();

  beforeAll(async () => {
    bundle = await buildTestBundle('api');
    env = stubStackEnvironment('api');
    smMock = secrets.mockClients();
    secrets.values.set(`${env.SECRET_PREFIX}/admin/token`, adminToken);
    ({ handler } = await importBundle<{ handler: ApiHandler }>(bundle.file));
  }, 60_000);

  afterAll(async () => {
    smMock?.restore();
    await bundle?.dispose();
  });

  const invoke = async (method: string, path: string, options: Parameters<typeof httpApiEvent>[2] = {}) => {
    const result = await handler(httpApiEvent(method, path, options), {});
    return { status: result.statusCode, json: result.body ? JSON.parse(result.body) : undefined };
  };

  it('meets the 1 MB target and leaves the AWS SDK and ssh2 native parts outside', async () => {
    console.info(`figure: API Lambda bundle ${(bundle.bytes / 1024).toFixed(0)} KiB minified`);
    expect(bundle.bytes).toBeLessThanOrEqual(MiB);
    // Beside it, only the docs page's renderer and the console's files, read when a page asks.
    const consoleFiles = bundle.files.filter((f) => f.name.startsWith(`${CONSOLE_BUNDLE_DIR}/`));
    expect(bundle.files.map((f) => f.name).filter((n) => !n.startsWith(`${CONSOLE_BUNDLE_DIR}/`))).toEqual(
      ['index.mjs', ...API_BUNDLE_PACKAGE_FILES.map((f) => `node_modules/${f}`)].sort(),
    );
    expect(consoleFiles.map((f) => f.name.replace(/-\w+\./, '-<hash>.'))).toEqual([
      'console/console-<hash>.css',
      'console/console-<hash>.js',
      'console/index.html',
    ]);
    const consoleBytes = consoleFiles.reduce((sum, f) => sum + f.bytes, 0);
    console.info(`figure: console ${(consoleBytes / 1024).toFixed(0)} KiB beside the API bundle`);
    expect(consoleBytes).toBeLessThan(200 * 1024);
    const { readFile } = await import('node:fs/promises');
    const code = await readFile(bundle.file, 'utf8');
    expect(code).toMatch(/from\s*"@aws-sdk\/client-dynamodb"/);
    expect(code).toMatch(/from\s*"@aws-sdk\/client-secrets-manager"/);
    expect(code).toContain('"./crypto/build/Release/sshcrypto.node"'); // required in try/catch, absent in Lambda
  });

  it('creates a workspace, then creates and reads tunnels through HTTP API v2 events', async () => {
    const workspace = await invoke('POST', '/v1/admin/workspaces', {
      token: adminToken,
      body: { name: 'acme' },
    });
    expect(workspace.status).toBe(201);
    const apiKey: string = workspace.json.apiKey;

    const reverse = await invoke('POST', '/v1/tunnels', {
      token: apiKey,
      body: { type: 'reverse', name: 'warehouse', service: { host: 'db.internal', port: 5432 } },
    });
    expect(reverse.status).toBe(201);
    const created = TunnelSchema.parse(reverse.json);
    // The customer's command names the public endpoint the stack configured, on port 22, and the
    // host key the API created in Secrets Manager on its cold start.
    const hostKey = JSON.parse(secrets.values.get(`${env.SECRET_PREFIX}/gateway/host-key`) ?? 'null');
    expect(created.reverse).toMatchObject({ sshHost: PUBLIC_SSH_HOST, sshPort: 22, sshUser: created.id });
    expect(created.reverse?.knownHostsLine).toContain(hostKey.publicKey.split(' ')[1]);
    expect(created.reverse?.remotePort).toBeGreaterThanOrEqual(20000);
    expect(created.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);

    const standard = await invoke('POST', '/v1/tunnels', {
      token: apiKey,
      body: {
        type: 'standard',
        name: 'orders',
        ssh: { host: 'bastion.example.com', user: 'tunnel' },
        service: { host: '10.1.2.3', port: 5432 },
      },
    });
    expect(standard.status).toBe(201);
    // Its private key went to Secrets Manager under the prefix the IAM policy allows.
    expect(secrets.values.has(`${env.SECRET_PREFIX}/tunnels/${standard.json.id}`)).toBe(true);

    const read = await invoke('GET', `/v1/tunnels/${created.id}`, { token: apiKey });
    expect(read.status).toBe(200);
    expect(TunnelSchema.parse(read.json)).toMatchObject({
      id: created.id,
      name: 'warehouse',
      status: { state: 'pending' },
    });
    expect(read.json.privateKey).toBeUndefined();

    const listed = await invoke('GET', '/v1/tunnels', { token: apiKey });
    expect(listed.json.items.map((t: { id: string }) => t.id).sort()).toEqual(
      [created.id, standard.json.id].sort(),
    );

    const item = await table.doc.send(
      new GetCommand({ TableName: table.tableName, Key: keys.tunnel(created.id) }),
    );
    expect(item.Item).toMatchObject({ name: 'warehouse' });
  });

  it('serves the docs page and its renderer from the files beside the bundle', async () => {
    const { readFile } = await import('node:fs/promises');
    const page = await handler(httpApiEvent('GET', '/docs'), {});
    expect(page.statusCode).toBe(200);
    expect(page.headers?.['content-security-policy']).toMatch(/default-src 'none'/);
    const assets = [...page.body.matchAll(/(?:href|src)="docs\/assets\/([\w.-]+)\?v=[\w-]+"/g)].map(
      (m) => m[1],
    );
    expect(assets).toHaveLength(3);
    for (const name of assets) {
      const res = await handler(httpApiEvent('GET', `/docs/assets/${name}`), {});
      expect(res.statusCode).toBe(200);
      expect(res.headers?.['content-type']).toMatch(/^text\/(javascript|css); charset=utf-8$/);
      // Text, not base64: the 1.7 MB renderer stays far below Lambda's 6 MB response limit.
      expect(res.body.length).toBeGreaterThan(100);
    }
    const renderer = await handler(httpApiEvent('GET', '/docs/assets/swagger-ui.js'), {});
    expect(renderer.body).toBe(
      await readFile(`${bundle.outdir}/node_modules/swagger-ui-dist/swagger-ui-bundle.js`, 'utf8'),
    );
  });

  it('serves the customer console at / and its files, from the copy beside the bundle', async () => {
    const page = await handler(httpApiEvent('GET', '/'), {});
    expect(page.statusCode).toBe(200);
    expect(page.headers?.['content-security-policy']).toMatch(/default-src 'self'/);
    const assets = [...page.body.matchAll(/(?:href|src)="console\/([\w.-]+)"/g)].map((m) => m[1]);
    expect(assets).toHaveLength(2);
    for (const name of assets) {
      const res = await handler(httpApiEvent('GET', `/console/${name}`), {});
      expect(res.statusCode).toBe(200);
      expect(res.headers?.['content-type']).toMatch(/^text\/(javascript|css); charset=utf-8$/);
      expect(res.body.length).toBeGreaterThan(1000);
    }
    expect((await handler(httpApiEvent('GET', '/console/index.mjs'), {})).statusCode).toBe(404);
  });

  it("tells customers, without a key, the stack's egress IPs and the endpoint's host key", async () => {
    const res = await handler(httpApiEvent('GET', '/v1/info'), {});
    expect(res.statusCode).toBe(200);
    expect(res.headers?.['cache-control']).toBe('public, max-age=300');
    const info = ServiceInfoSchema.parse(JSON.parse(res.body));
    expect(info.egressIps).toEqual(EGRESS_IPS);
    const hostKey = JSON.parse(secrets.values.get(`${env.SECRET_PREFIX}/gateway/host-key`) ?? 'null');
    expect(info.sshEndpoint).toMatchObject({ host: PUBLIC_SSH_HOST, port: 22 });
    expect(info.sshEndpoint.hostKeys[0]?.knownHostsLine).toBe(
      `${PUBLIC_SSH_HOST} ${hostKey.publicKey.split(' ').slice(0, 2).join(' ')}`,
    );
  });

  it('refuses without a key and never reaches the store', async () => {
    const before = secrets.calls.length;
    const res = await invoke('GET', '/v1/tunnels');
    expect(res.status).toBe(401);
    expect(res.json.error.code).toBe('unauthorized');
    expect(secrets.calls.length).toBe(before);
  });
});

describe('sweeper Lambda bundle', () => {
  let bundle: Bundle;
  let handler: SweeperHandler;
  const sns = mockClient(SNSClient);

  beforeAll(async () => {
    bundle = await buildTestBundle('sweeper');
    stubStackEnvironment('sweeper');
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    ({ handler } = await importBundle<{ handler: SweeperHandler }>(bundle.file));
  }, 60_000);

  afterAll(async () => {
    sns.restore();
    await bundle?.dispose();
  });

  it('is small and leaves the AWS SDK outside', () => {
    console.info(`figure: sweeper Lambda bundle ${(bundle.bytes / 1024).toFixed(0)} KiB minified`);
    expect(bundle.bytes).toBeLessThanOrEqual(MiB);
    expect(bundle.files.map((f) => f.name)).toEqual(['index.mjs']);
  });

  it('runs one sweep: a tunnel down past the grace period is alerted on SNS, once', async () => {
    const [tunnel] = await storeTunnels(table.doc, table.tableName, 'ws_bundle', 1);
    if (!tunnel) throw new Error('no tunnel stored');
    await gatewaySim(table.doc, table.tableName).down(tunnel.id, Date.now() - 10 * 60_000, 'w1', 'c1');

    const context = { getRemainingTimeInMillis: () => 55_000 };
    const report = await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event' }, context);
    expect(report).toMatchObject({ transitions: 1, alertsQueued: 1, errors: 0 });
    await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event' }, context);

    const published = sns.commandCalls(PublishCommand).map((call) => call.args[0].input);
    expect(published).toHaveLength(1);
    expect(published[0]?.TopicArn).toBe(TOPIC);
    const alert = AlertSchema.parse(JSON.parse(published[0]?.Message ?? '{}'));
    expect(alert).toMatchObject({ type: 'tunnel.down', tunnel: { id: tunnel.id } });
  });
});

describe('connect-targets Lambda bundle', () => {
  let bundle: Bundle;
  let handler: (event: unknown) => Promise<{ registered: number; failed: number }>;
  const elb = mockClient(ElasticLoadBalancingV2Client);
  const connectGroup = `${ELB}:targetgroup/Tunnel-Port20000/00000000000000aa`;

  beforeAll(async () => {
    bundle = await buildTestBundle('connect-targets');
    stubStackEnvironment('connect-targets');
    elb
      .on(DescribeTargetGroupsCommand)
      .resolves({ TargetGroups: [{ TargetGroupArn: connectGroup, Port: 20000 }] });
    elb.on(DescribeTargetHealthCommand, { TargetGroupArn: GATEWAY_GROUP }).resolves({
      TargetHealthDescriptions: [{ Target: { Id: '10.0.16.5' }, TargetHealth: { State: 'healthy' } }],
    });
    elb
      .on(DescribeTargetHealthCommand, { TargetGroupArn: connectGroup })
      .resolves({ TargetHealthDescriptions: [] });
    elb.on(RegisterTargetsCommand).resolves({});
    ({ handler } = await importBundle<{ handler: typeof handler }>(bundle.file));
  }, 60_000);

  afterAll(async () => {
    elb.restore();
    await bundle?.dispose();
  });

  it('is small and leaves the AWS SDK outside', () => {
    console.info(`figure: connect-targets Lambda bundle ${(bundle.bytes / 1024).toFixed(0)} KiB minified`);
    expect(bundle.bytes).toBeLessThanOrEqual(MiB);
    expect(bundle.files.map((f) => f.name)).toEqual(['index.mjs']);
  });

  it('registers the gateway tasks in the connect target groups the stack names, on a scheduled run', async () => {
    const report = await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event' });
    expect(report).toMatchObject({ registered: 1, failed: 0 });
    expect(elb.commandCalls(DescribeTargetGroupsCommand)[0]?.args[0].input.LoadBalancerArn).toBe(
      CONNECT_LBS[0],
    );
    expect(elb.commandCalls(RegisterTargetsCommand).map((c) => c.args[0].input)).toEqual([
      { TargetGroupArn: connectGroup, Targets: [{ Id: '10.0.16.5' }] },
    ]);
  });
});

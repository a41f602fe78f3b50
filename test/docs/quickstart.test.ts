/**
 * docs/quickstart.md, executed: every `sh` block of the page not marked
 * `<!-- quickstart-test: skip ... -->`, in order, in one shell as a throwaway Unix user, against
 * `npm start` and a real PostgreSQL, with only the page's documented placeholders replaced. It must
 * end with psql answering through the reverse tunnel, so a page that drifts from the product fails.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { Customer, requireTools } from '../helpers/customer';
import { killGroup, type StartedStack, startStack } from '../helpers/local-stack';
import { type Postgres, startPostgres } from '../helpers/postgres';

const PAGE = new URL('../../docs/quickstart.md', import.meta.url);
const SKIP_MARK = /<!--\s*quickstart-test:\s*skip\b[^>]*-->\s*$/;

/** The page's `sh` blocks in order, each with whether the page marks it as not for the test. */
function shellBlocks(markdown: string): { code: string; skipped: boolean }[] {
  const blocks: { code: string; skipped: boolean }[] = [];
  const fence = /```sh\n([\s\S]*?)```/g;
  for (let match = fence.exec(markdown); match; match = fence.exec(markdown)) {
    const before = markdown.slice(0, match.index).trimEnd();
    blocks.push({ code: match[1] ?? '', skipped: SKIP_MARK.test(before) });
  }
  return blocks;
}

describe('docs/quickstart.md', () => {
  const endpoint = inject('dynamoEndpoint');
  const tableName = `test-${randomBytes(6).toString('hex')}`;
  const apiKey = `tk_${randomBytes(32).toString('base64url')}`;
  const dynamo = createDynamoClients({ region: 'us-east-1', endpoint });
  let dataDir: string;
  let stack: StartedStack | undefined;
  let postgres: Postgres | undefined;
  let customer: Customer | undefined;

  beforeAll(async () => {
    requireTools('ssh', 'ssh-keygen', 'curl', 'jq', 'psql', 'runuser', 'useradd', 'userdel', 'pgrep');
    dataDir = await mkdtemp(join(tmpdir(), 'tk-quickstart-'));
    [stack, postgres, customer] = await Promise.all([
      startStack(
        {
          DYNAMODB_ENDPOINT: endpoint,
          TABLE_NAME: tableName,
          DATA_DIR: dataDir,
          BOOTSTRAP_API_KEY: apiKey,
          TUNNEL_PORT_RANGE: '17000-17099',
        },
        60_000,
      ),
      startPostgres(),
      Customer.create(),
    ]);
  }, 90_000);

  afterAll(async () => {
    await customer?.dispose();
    if (stack) killGroup(stack.child);
    await postgres?.stop();
    await dynamo.client.send(new DeleteTableCommand({ TableName: tableName })).catch(() => {});
    dynamo.client.destroy();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('marks only blocks that cannot run here, and runs the reverse section to psql through the tunnel', async () => {
    if (!stack || !postgres || !customer) throw new Error('set-up failed');
    const page = await readFile(PAGE, 'utf8');
    const blocks = shellBlocks(page);
    const runnable = blocks.filter((b) => !b.skipped).map((b) => b.code);
    // The service start, the systemd unit and the standard section's bastion steps are skipped.
    expect(blocks.filter((b) => b.skipped).length).toBeLessThanOrEqual(4);
    expect(runnable.join('')).toContain('psql');

    // Exactly the placeholders the page's table lists.
    const placeholders: [string, string][] = [
      ['http://127.0.0.1:8787', stack.baseUrl],
      ['tk_paste_your_api_key_here', apiKey],
      ['"port": 5432', `"port": ${postgres.port}`],
    ];
    for (const [placeholder] of placeholders) expect(page).toContain(placeholder);
    let script = runnable.map((code, i) => `echo '--- quickstart block ${i + 1}'\n${code}`).join('\n');
    for (const [placeholder, value] of placeholders) script = script.replaceAll(placeholder, value);

    const run = await customer.exec(`set -eu\n${script}`, 60_000);
    const output = `${run.stdout}\n${run.stderr}`;
    expect(run.code, output).toBe(0);
    expect(run.stdout).toMatch(/tunnel tun_[a-z2-7]{16} is up/);
    expect(run.stdout).toMatch(/through_the_tunnel\s*\n-+\n\s*1\n/);
    // The private key left the answer for ~/.ssh only, readable by its owner alone.
    const keyCheck = await customer.exec('stat -c %a ~/.ssh/tunnelkeeper_* && ls tunnel.json 2>&1 || true');
    expect(keyCheck.stdout).toMatch(/^600\n.*No such file/s);
  }, 90_000);
});

/**
 * A tunnel's commands and authorized_keys line as plain-text files (issue 14): what `curl -o`
 * writes is exactly the JSON's text plus a newline, the shell reads the commands, OpenSSH reads
 * the line, and a tunnel of the other type is told which file it has instead.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TunnelSchema } from '../../../shared/schemas';
import { keys } from '../../../shared/store/table';
import { createTestApi } from '../../helpers/api';
import { requireTools } from '../../helpers/customer';

const run = promisify(execFile);
type TestApi = Awaited<ReturnType<typeof createTestApi>>;

describe('GET /v1/tunnels/{id}/commands/{kind} and /authorized-keys-line', () => {
  let api: TestApi;
  let apiKey: string;
  let dir: string;
  let reverse: ReturnType<typeof TunnelSchema.parse>;
  let standard: ReturnType<typeof TunnelSchema.parse>;

  beforeAll(async () => {
    requireTools('sh', 'ssh-keygen');
    api = await createTestApi();
    apiKey = (await api.newWorkspace()).apiKey;
    dir = await mkdtemp(join(tmpdir(), 'tk-files-'));
    const create = async (body: unknown) => {
      const res = await api.call('POST', '/v1/tunnels', apiKey, body);
      expect(res.status).toBe(201);
      return TunnelSchema.parse(res.json);
    };
    reverse = await create({ type: 'reverse', name: 'files', service: { host: 'db.internal', port: 5432 } });
    standard = await create({
      type: 'standard',
      name: 'files',
      ssh: { host: 'bastion.example.com', user: 'tunnel' },
      service: { host: '10.1.2.3', port: 5432 },
    });
  });
  afterAll(async () => {
    await api?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const fetchFile = (path: string) => api.call('GET', path, apiKey);

  it.each(['ssh', 'autossh', 'systemd', 'crontab', 'plink'] as const)(
    "serves the reverse tunnel's %s command as the JSON has it, plus a newline",
    async (kind) => {
      const res = await fetchFile(`/v1/tunnels/${reverse.id}/commands/${kind}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('Content-Type')).toBe('text/plain; charset=utf-8');
      // Ending in exactly one newline (the systemd unit's text has its own already).
      expect(res.text).toBe(`${reverse.reverse?.commands[kind]?.replace(/\n*$/, '')}\n`);
      expect(res.text.endsWith('\n\n')).toBe(false);
      if (kind === 'ssh' || kind === 'autossh') {
        // What `curl -o` wrote, read by the shell that will run it.
        const file = join(dir, `${kind}.sh`);
        await writeFile(file, res.text);
        await expect(run('sh', ['-n', file])).resolves.toBeDefined();
      }
      if (kind === 'systemd') {
        expect(res.headers.get('Content-Disposition')).toBe(
          `attachment; filename="tunnelkeeper-${reverse.id}.service"`,
        );
      }
    },
  );

  it("serves the standard tunnel's authorized_keys line, which OpenSSH reads", async () => {
    const res = await fetchFile(`/v1/tunnels/${standard.id}/authorized-keys-line`);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toBe('text/plain; charset=utf-8');
    expect(res.text).toBe(`${standard.authorizedKeysLine}\n`);
    const file = join(dir, 'authorized_keys');
    await writeFile(file, res.text);
    const { stdout } = await run('ssh-keygen', ['-l', '-f', file]);
    expect(stdout).toContain(standard.publicKeyFingerprint);
  });

  it('tells a tunnel of the other type which file it has, and names a wrong kind', async () => {
    const noCommands = await fetchFile(`/v1/tunnels/${standard.id}/commands/ssh`);
    expect(noCommands.status).toBe(409);
    expect(noCommands.json.error.message).toMatch(/standard tunnel.*authorized-keys-line/);
    const noLine = await fetchFile(`/v1/tunnels/${reverse.id}/authorized-keys-line`);
    expect(noLine.status).toBe(409);
    expect(noLine.json.error.message).toMatch(/reverse tunnel.*commands/);
    const wrongKind = await fetchFile(`/v1/tunnels/${reverse.id}/commands/powershell`);
    expect(wrongKind.status).toBe(422);
    expect(wrongKind.json.error.details).toEqual([
      { path: 'kind', message: 'must be one of ssh, autossh, systemd, crontab, plink' },
    ]);
    expect((await fetchFile('/v1/tunnels/tun_aaaaaaaaaaaaaaaa/commands/ssh')).status).toBe(404);
    expect((await api.call('GET', `/v1/tunnels/${reverse.id}/commands/ssh`, undefined)).status).toBe(401);
  });

  it('says why a standard tunnel stored with a host the line cannot hold has no line, and what to change', async () => {
    const res = await api.call('POST', '/v1/tunnels', apiKey, {
      type: 'standard',
      name: 'zoned',
      ssh: { host: 'bastion.example.com', user: 'tunnel' },
      service: { host: '10.1.2.4', port: 5432 },
    });
    const id = TunnelSchema.parse(res.json).id;
    // As a tunnel stored before hosts were checked (issue 12): an IPv6 zone id.
    await api.table.doc.send(
      new UpdateCommand({
        TableName: api.table.tableName,
        Key: keys.tunnel(id),
        UpdateExpression: 'SET #s.#h = :h',
        ExpressionAttributeNames: { '#s': 'service', '#h': 'host' },
        ExpressionAttributeValues: { ':h': 'fe80::1%eth0' },
      }),
    );
    const noLine = await fetchFile(`/v1/tunnels/${id}/authorized-keys-line`);
    expect(noLine.status).toBe(409);
    expect(noLine.json.error.message).toMatch(
      new RegExp(`tunnel ${id} has no authorized-keys line: its service host .*zone id.*PATCH`),
    );
    expect(noLine.json.error.message).not.toMatch(/reverse/);
  });
});

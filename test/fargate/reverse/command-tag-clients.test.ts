/**
 * The service tag in the `-R` bind address (shared/command-tag.ts), with the real clients
 * customers run: Debian's OpenSSH (the rendered command verbatim under `sh -c`), PuTTY's `plink`
 * and Dropbear's `dbclient` (each given the same `reverseForwardSpec`). Each sends the tag as its
 * bind address, the gateway records it in the tunnel's STATE item, and connections through the
 * tunnel still reach the service (the client matches our `forwarded-tcpip` by that address).
 *
 * A gateway of its own, offering AES-CTR besides AES-GCM: Dropbear 2022.83 as Debian builds it has
 * no AES-GCM, and the endpoint's default offer (GCM only) is widened per client elsewhere.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayDepsFromEnv } from '../../../fargate/compose';
import { Gateway } from '../../../fargate/gateway';
import { issueApiKey } from '../../../shared/api-keys';
import { serviceTagOf } from '../../../shared/command-tag';
import { renderReverseCommands, reverseForwardSpec } from '../../../shared/commands';
import { parseEnv } from '../../../shared/config';
import { ensureHostKey } from '../../../shared/host-key';
import { newTunnelId, newWorkspaceId } from '../../../shared/ids';
import { knownHostsLine, parsePublicKey } from '../../../shared/keys';
import { createLogger } from '../../../shared/logger';
import { FileSecretStore } from '../../../shared/secrets/file-secret-store';
import type { TunnelRecord } from '../../../shared/tunnel';
import { Cleanups } from '../../helpers/cleanups';
import { type Customer, customerFor, requireTools, sshKeygen } from '../../helpers/customer';
import { createTestTable } from '../../helpers/dynamo';
import { type EchoServer, echoProbe, startEchoServer } from '../../helpers/echo';
import { gatewayItems } from '../../helpers/standard';
import { waitFor } from '../../helpers/wait-for';

const SSH_HOST = 'localhost';

describe('the -R service tag with OpenSSH, plink and dbclient', () => {
  let table: Awaited<ReturnType<typeof createTestTable>>;
  let gateway: Gateway;
  let echo: EchoServer;
  let hostPublicKey: string;
  let workspaceId: string;
  const cleanups = new Cleanups();

  beforeAll(async () => {
    requireTools(
      'ssh',
      'ssh-keygen',
      'plink',
      'puttygen',
      'dbclient',
      'dropbearconvert',
      'runuser',
      'useradd',
    );
    table = await createTestTable();
    cleanups.add(() => table.drop());
    const dir = await mkdtemp(join(tmpdir(), 'tk-tag-'));
    cleanups.add(() => rm(dir, { recursive: true, force: true }));
    const secrets = new FileSecretStore(join(dir, 'secrets'));
    hostPublicKey = (await ensureHostKey(secrets)).publicKey;
    const env = parseEnv({
      TABLE_NAME: table.tableName,
      HOST: '127.0.0.1',
      SSH_PORT: '0',
      TUNNEL_PORT_RANGE: '15300-15399',
      HEARTBEAT_INTERVAL_MS: '2000',
    });
    const deps = gatewayDepsFromEnv(env, {
      doc: table.doc,
      secrets,
      logger: createLogger('error', () => {}),
      allowPrivateSshHostsByDefault: true,
    });
    gateway = new Gateway(deps);
    await gateway.start();
    cleanups.add(() => gateway.stop());
    echo = await startEchoServer();
    cleanups.add(() => echo.close());
    workspaceId = newWorkspaceId();
    await table.store.createWorkspace(
      { id: workspaceId, name: 'tags', createdAt: new Date().toISOString() },
      issueApiKey(new Date().toISOString()).record,
    );
  });

  afterAll(() => cleanups.runAll());

  /** A reverse tunnel to the echo service and a customer holding its key and our host key. */
  async function tunnelAndCustomer(): Promise<{ tunnel: TunnelRecord; customer: Customer }> {
    const key = await sshKeygen('ed25519');
    const at = new Date().toISOString();
    const tunnel = await table.store.createTunnel(
      {
        id: newTunnelId(),
        workspaceId,
        name: 'tagged',
        type: 'reverse',
        enabled: true,
        createdAt: at,
        updatedAt: at,
        service: { host: '127.0.0.1', port: echo.port },
        publicKey: key.publicKey,
        publicKeyFingerprint: parsePublicKey(key.publicKey, 'publicKey').fingerprint,
      },
      { from: 15300, to: 15399 },
    );
    const customer = await customerFor(
      {
        id: tunnel.id,
        reverse: { knownHostsLine: knownHostsLine(SSH_HOST, gateway.sshPort, hostPublicKey) },
      },
      key.privateKey,
    );
    cleanups.add(() => customer.dispose());
    return { tunnel, customer };
  }

  /** Runs `command` as the customer until the gateway recorded the session's tag; then checks the forward. */
  async function expectTaggedForward(
    tunnel: TunnelRecord,
    customer: Customer,
    command: string,
  ): Promise<void> {
    const client = customer.start(command);
    const tag = await waitFor(
      async () => {
        const state = (await gatewayItems(table.doc, table.tableName, [tunnel.id])).get(tunnel.id)?.state;
        return state?.state === 'up' ? (state.commandTag ?? 'none') : undefined;
      },
      20_000,
      { what: `an up session of ${tunnel.id} (client said: ${client.stderr().trim()})` },
    );
    expect(tag).toBe(serviceTagOf(tunnel.service));
    expect(await echoProbe('127.0.0.1', tunnel.port, 5_000)).toBe(true);
    client.kill();
    await client.exited;
  }

  const forwardOf = (tunnel: TunnelRecord) =>
    reverseForwardSpec({ remotePort: tunnel.port, service: tunnel.service });

  it.concurrent('OpenSSH: the rendered command, verbatim under sh -c', async () => {
    const { tunnel, customer } = await tunnelAndCustomer();
    const commands = renderReverseCommands({
      tunnelId: tunnel.id,
      sshHost: SSH_HOST,
      sshPort: gateway.sshPort,
      remotePort: tunnel.port,
      service: tunnel.service,
      keepaliveIntervalSec: 15,
      // Only the ssh form runs here; plink's pin is not read.
      hostKeyFingerprint: 'SHA256:unused-by-this-test',
    });
    expect(commands.ssh).toContain(` -R ${forwardOf(tunnel)} `);
    await expectTaggedForward(tunnel, customer, commands.ssh);
  });

  it.concurrent("PuTTY's plink, the host key pinned", async () => {
    const { tunnel, customer } = await tunnelAndCustomer();
    const key = `~/.ssh/tunnelkeeper_${tunnel.id}`;
    const fingerprint = parsePublicKey(hostPublicKey, 'hostKey').fingerprint;
    const converted = await customer.exec(`puttygen ${key} -O private -o ${key}.ppk`);
    expect(converted.code, converted.stderr).toBe(0);
    await expectTaggedForward(
      tunnel,
      customer,
      `plink -batch -ssh -N -i ${key}.ppk -hostkey ${fingerprint} -P ${gateway.sshPort} ` +
        `-R ${forwardOf(tunnel)} ${tunnel.id}@${SSH_HOST}`,
    );
  });

  it.concurrent("Dropbear's dbclient, the host key from known_hosts", async () => {
    const { tunnel, customer } = await tunnelAndCustomer();
    const key = `~/.ssh/tunnelkeeper_${tunnel.id}`;
    const converted = await customer.exec(`dropbearconvert openssh dropbear ${key} ${key}.db`);
    expect(converted.code, converted.stderr).toBe(0);
    // Dropbear 2022.83 looks hosts up by name alone: it reads no `[host]:port` entry.
    await customer.trustHosts(`${SSH_HOST} ${hostPublicKey.split(' ').slice(0, 2).join(' ')}`);
    await expectTaggedForward(
      tunnel,
      customer,
      `dbclient -N -i ${key}.db -p ${gateway.sshPort} -R ${forwardOf(tunnel)} ${tunnel.id}@${SSH_HOST}`,
    );
  });
});

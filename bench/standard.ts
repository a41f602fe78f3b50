/**
 * Standard tunnels (target 4): our pool's SSH session to a bastion sshd, carrying platform
 * connections to the service behind it, against `ssh -N -L` through the same sshd (the stock
 * client, and pinned to AES-GCM, which is what our pool's ssh2 client picks). Bulk each way and
 * new-connection latency.
 */
import { freePort } from '../local/free-port';
import { type Tunnel, TunnelSchema } from '../shared/schemas';
import { waitFor } from '../test/helpers/wait-for';
import type { Bench, Measured } from './context';
import { latencyFigures, sampleNewConnections } from './new-connection';
import { opensshLocalCommand, startCustomerSsh } from './support/openssh';
import { AES_GCM, bulkFigures, bulkMethod, sampleBulk } from './throughput';

export async function measureStandard(bench: Bench): Promise<Measured> {
  const { stack, bastion, service, settings } = bench;
  const key = stack.api.keys[0] ?? '';
  const created = await stack.api.createTunnel(key, {
    type: 'standard',
    name: 'bench-standard',
    ssh: { host: '127.0.0.1', port: bastion.port, user: bastion.user },
    service: { host: '127.0.0.1', port: service.port },
  });
  if (!created.authorizedKeysLine) throw new Error('standard tunnel without authorizedKeysLine');
  await bastion.bastion.setAuthorizedKeys([bench.key.publicKey, created.authorizedKeysLine]);
  const up = await waitFor(
    async () => {
      const res = await stack.api.call(key, 'GET', `/v1/tunnels/${created.id}`);
      const tunnel: Tunnel = TunnelSchema.parse(res.json);
      return tunnel.status.state === 'up' && tunnel.connect ? tunnel.connect : undefined;
    },
    30_000,
    { what: 'standard tunnel up', intervalMs: 200 },
  );
  bench.log(`standard tunnel up on port ${up.port}`);
  const localStock = await freePort();
  const stock = await startCustomerSsh(
    bench.cleanup,
    bench.customer,
    opensshLocalCommand(bastion, localStock, service.port),
    localStock,
  );
  const localAes = await freePort();
  const aes = await startCustomerSsh(
    bench.cleanup,
    bench.customer,
    opensshLocalCommand(bastion, localAes, service.port, AES_GCM),
    localAes,
  );
  try {
    const bulk = await sampleBulk(
      { ours: up.port, opensshStock: stock.port, opensshAes: aes.port },
      settings.bulkBytes,
      settings.bulkRuns,
      bench.log,
    );
    const latency = await sampleNewConnections(
      { ours: up.port, openssh: stock.port },
      settings.connections,
      settings.quick ? 20_000 : 90_000,
    );
    const size = bulkMethod(settings.bulkBytes, settings.bulkRuns);
    return {
      figures: [
        ...bulkFigures(
          'standard.bulk.stock',
          'Standard bulk vs stock ssh -N -L',
          bulk.ours,
          bulk.opensshStock,
          { factor: 0.9, text: '≥ 0.9× ssh -L' },
          `${size}; our pool (ssh2 client) negotiates its first cipher, aes128-gcm; ssh -L negotiated ${stock.cipher()}`,
        ),
        ...bulkFigures(
          'standard.bulk.aes',
          `Standard bulk vs ssh -N -L -c ${AES_GCM}`,
          bulk.ours,
          bulk.opensshAes,
          undefined,
          `same cipher on both; ssh -L negotiated ${aes.cipher()}`,
        ),
        ...latencyFigures(
          'standard.connect',
          'New connection through a standard tunnel',
          latency.ours ?? [],
          latency.openssh,
        ),
      ],
      details: { mbPerSec: bulk, connectMs: latency, ciphers: { stock: stock.cipher(), aes: aes.cipher() } },
    };
  } finally {
    await Promise.all([stock.stop(), aes.stop()]);
  }
}

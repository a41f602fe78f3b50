/**
 * Sets up one bench run: our stack and the OpenSSH side, a throwaway customer user with one key,
 * the customer's service, the ssh2 customer process, the tunnels, and a stock-client `ssh -N -R`
 * to each side. Everything registers its undo with `cleanup` as soon as it exists.
 */
import { freePort } from '../local/free-port';
import { Customer, requireTools, sshKeygen } from '../test/helpers/customer';
import type { Bench, BenchSettings } from './context';
import type { Cleanup } from './support/cleanup';
import {
  OPENSSH_KEY_FILE,
  opensshReverseCommand,
  ourReverseCommand,
  startCustomerSsh,
  startSshd,
} from './support/openssh';
import { openFilesLimit } from './support/procfs';
import { startBenchStack } from './support/stack';
import { startCustomerService } from './support/traffic';
import { TunnelClients } from './support/tunnel-clients';

/** Workspaces to spread API calls over: the rate limit is per workspace (50/s, burst 100). */
const WORKSPACES = 20;
/** Two sockets per idle tunnel on the gateway (SSH connection, listener), one in the ssh2 customers. */
const OPEN_FILES_WANTED = 65_536;

/**
 * The first `count` tunnels of the bench's login pool, written to the table (as `addReverseTunnels`
 * does) the first time a phase needs them.
 */
export async function poolTunnels(bench: Bench, count: number): Promise<{ id: string; port: number }[]> {
  const { pool } = bench.tunnels;
  if (pool.length < count) {
    const service = { host: '127.0.0.1', port: bench.service.port };
    pool.push(...(await bench.stack.addReverseTunnels(count - pool.length, service, bench.key.publicKey)));
  }
  return pool.slice(0, count);
}

/**
 * Promise.all that waits for every start before failing: a start still in flight when another
 * fails would otherwise register its clean-up after clean-up ran, and leak its process or user.
 */
async function allOrFirstError<T extends readonly unknown[]>(
  promises: { [K in keyof T]: Promise<T[K]> },
): Promise<T> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

export async function setUp(
  settings: BenchSettings,
  cleanup: Cleanup,
  log: (line: string) => void,
): Promise<Bench> {
  requireTools('ssh', 'ssh-keygen', 'sshd', 'runuser', 'useradd', 'userdel', 'pgrep', 'pkill', 'prlimit');
  const key = await sshKeygen('ed25519');
  const service = await startCustomerService();
  cleanup.add('customer service', () => service.close());

  const openFiles = await openFilesLimit(OPEN_FILES_WANTED);
  // The idle phase holds as many of `idleOurs` as the limit leaves room for (and says so); below
  // its first DynamoDB step there is nothing to measure.
  const fewest = settings.dynamoTunnels[0] ?? settings.idleOurs;
  if (openFiles < 4 * fewest) {
    throw new Error(`RLIMIT_NOFILE hard limit ${openFiles} is too low for ${fewest} idle tunnels`);
  }
  log('starting DynamoDB Local, the stack, two sshd, the customer user and the ssh2 customer process');
  const [stack, sshd, bastion, customer, clients] = await allOrFirstError([
    startBenchStack(cleanup, {
      // Below the ephemeral range (32768-60999) and the test suites' ranges (20000-31499); wide,
      // so port allocation rarely collides while 10,000 idle tunnels are written.
      portRange: { from: 6_000, to: 19_999 },
      sweepIntervalMs: settings.sweepIntervalMs,
      openFiles,
    }),
    startSshd(cleanup, [key.publicKey]),
    startSshd(cleanup, [key.publicKey]),
    Customer.create().then((c) => {
      cleanup.add(`customer user ${c.user}`, () => c.dispose());
      return c;
    }),
    TunnelClients.start(cleanup, openFiles),
  ]);

  await stack.api.ensureWorkspaces(WORKSPACES);
  const firstKey = stack.api.keys[0] ?? '';
  const serviceAddress = { host: '127.0.0.1', port: service.port };
  const body = (name: string) => ({
    type: 'reverse',
    name,
    service: serviceAddress,
    publicKey: key.publicKey,
  });
  const stock = await stack.api.createTunnel(firstKey, body('bench-stock'));
  const aes = await stack.api.createTunnel(firstKey, body('bench-aes'));

  const knownHostsLine = stock.reverse?.knownHostsLine;
  const hostKey = knownHostsLine?.split(' ')[2];
  if (!knownHostsLine || !hostKey) throw new Error('the API gave no known_hosts line');
  await customer.installKey(stock.id, key.privateKey);
  await customer.installKey(aes.id, key.privateKey);
  await customer.writeFile(OPENSSH_KEY_FILE, key.privateKey);
  await customer.trustHosts(knownHostsLine, sshd.knownHostsLine, bastion.knownHostsLine);

  const opensshPort = await freePort();
  const [oursSsh, opensshSsh] = await Promise.all([
    startCustomerSsh(cleanup, customer, ourReverseCommand(stock), stock.reverse?.remotePort ?? 0),
    startCustomerSsh(cleanup, customer, opensshReverseCommand(sshd, opensshPort, service.port), opensshPort),
  ]);
  log(`open-files limit of the stack and the ssh2 customers: ${openFiles}`);
  return {
    settings,
    cleanup,
    log,
    stack,
    sshd,
    bastion,
    customer,
    key,
    service,
    clients,
    targets: {
      ours: { host: '127.0.0.1', port: stack.sshPort, hostKey, privateKey: key.privateKey },
      openssh: { host: '127.0.0.1', port: sshd.port, hostKey: sshd.hostKey, privateKey: key.privateKey },
    },
    tunnels: { stock, aes, pool: [] },
    stockSsh: { ours: oursSsh, openssh: opensshSsh },
  };
}

/**
 * The OpenSSH side of the comparison and the customer's stock `ssh` client: an sshd of its own
 * (the tests' `Bastion`: own config, loopback port, throwaway user, no system service) and the
 * `ssh -N -R` / `-L` command lines a customer runs, as that throwaway customer user.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { customerSshOptions } from '../../shared/commands';
import type { Tunnel } from '../../shared/schemas';
import { Bastion } from '../../test/helpers/bastion';
import type { Customer, CustomerProcess } from '../../test/helpers/customer';
import { waitFor } from '../../test/helpers/wait-for';
import type { Cleanup } from './cleanup';
import { connectAndEcho } from './traffic';

export interface Sshd {
  bastion: Bastion;
  port: number;
  user: string;
  /** `[127.0.0.1]:<port> ssh-ed25519 ...` for the customer's known_hosts. */
  knownHostsLine: string;
  /** The host key blob, base64. */
  hostKey: string;
  /** The listening sshd's pid (from its PidFile); per-connection processes are its descendants. */
  listenerPid(): Promise<number>;
}

export async function startSshd(cleanup: Cleanup, authorizedKeys: string[]): Promise<Sshd> {
  const bastion = await Bastion.start();
  cleanup.add(`sshd on ${bastion.port}`, () => bastion.dispose());
  await bastion.setAuthorizedKeys(authorizedKeys);
  const pub = (await readFile(join(bastion.dir, 'host_ed25519.pub'), 'utf8')).trim().split(' ');
  const [type, hostKey] = pub;
  if (!type || !hostKey) throw new Error('sshd host key unreadable');
  return {
    bastion,
    port: bastion.port,
    user: bastion.user,
    knownHostsLine: `[127.0.0.1]:${bastion.port} ${type} ${hostKey}`,
    hostKey,
    listenerPid: async () => Number((await readFile(join(bastion.dir, 'sshd.pid'), 'utf8')).trim()),
  };
}

/** The customer's private key for OpenSSH logins, relative to the customer's home. */
export const OPENSSH_KEY_FILE = '.ssh/bench_openssh';

/** Options every customer command shares with ours (CONTRACT's `reverse.commands.ssh`). */
const commonOptions = (port: number) => customerSshOptions(port, 15);

/** `-v` so the negotiated cipher can be read; `-c` only when the run pins one. */
function clientFlags(cipher: string | undefined): string {
  return cipher ? `ssh -v -c ${cipher} ` : 'ssh -v ';
}

/** Our API's customer command, verbatim apart from the client flags. */
export function ourReverseCommand(tunnel: Tunnel, cipher?: string): string {
  const command = tunnel.reverse?.commands.ssh;
  if (!command?.startsWith('ssh ')) throw new Error(`tunnel ${tunnel.id} has no ssh command`);
  return command.replace(/^ssh /, clientFlags(cipher));
}

/** The same command against sshd: forward `remotePort` on sshd's loopback to the service. */
export function opensshReverseCommand(
  sshd: Sshd,
  remotePort: number,
  servicePort: number,
  cipher?: string,
): string {
  return opensshForwardCommand(sshd, ['-R', `${remotePort}:127.0.0.1:${servicePort}`], cipher);
}

/** `ssh -N -L` through the bastion: the platform side listens on `localPort`. */
export function opensshLocalCommand(
  sshd: Sshd,
  localPort: number,
  servicePort: number,
  cipher?: string,
): string {
  return opensshForwardCommand(sshd, ['-L', `127.0.0.1:${localPort}:127.0.0.1:${servicePort}`], cipher);
}

/** `ssh -N` to sshd as its throwaway user with one forwarding. */
function opensshForwardCommand(sshd: Sshd, forward: [string, string], cipher?: string): string {
  return [
    `${clientFlags(cipher)}-N -T -i ~/${OPENSSH_KEY_FILE}`,
    ...commonOptions(sshd.port),
    ...forward,
    `${sshd.user}@127.0.0.1`,
  ].join(' ');
}

/** The ciphers `ssh -v` reports for each direction, e.g. `chacha20-poly1305@openssh.com`. */
export function negotiatedCipher(sshStderr: string): string {
  const out = /kex: server->client cipher: (\S+)/.exec(sshStderr)?.[1];
  const inbound = /kex: client->server cipher: (\S+)/.exec(sshStderr)?.[1];
  if (!out && !inbound) return 'unknown';
  return out === inbound || !inbound ? (out ?? 'unknown') : `${out} / ${inbound}`;
}

export interface RunningSsh {
  proc: CustomerProcess;
  /** Where the platform side connects. */
  port: number;
  cipher(): string;
  stop(): Promise<void>;
}

/**
 * Starts a customer ssh command and waits until a connection through `port` reaches the service
 * (the forward is in place end to end), failing with ssh's output if it exits or times out.
 */
export async function startCustomerSsh(
  cleanup: Cleanup,
  customer: Customer,
  command: string,
  port: number,
  timeoutMs = 20_000,
): Promise<RunningSsh> {
  const proc = customer.start(command);
  const stop = cleanup.add(`ssh (${command.slice(0, 60)}...)`, async () => {
    proc.kill();
    await Promise.race([proc.exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  });
  try {
    const exited = proc.exited.then((exit) => {
      throw new Error(`ssh exited (${exit.code ?? exit.signal})`);
    });
    exited.catch(() => {});
    await Promise.race([
      exited,
      waitFor(() => connectAndEcho(port, 2_000).then(() => true), timeoutMs, {
        what: `forward on ${port}`,
        intervalMs: 100,
      }),
    ]);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${command}\n${proc.stderr().slice(-2_000)}`);
  }
  return { proc, port, cipher: () => negotiatedCipher(proc.stderr()), stop };
}

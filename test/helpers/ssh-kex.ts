/**
 * Which key exchange a real client negotiates with a server, read from its verbose output: OpenSSH
 * prints `debug1: kex: algorithm: NAME` with `-v`, PuTTY's plink `Doing … key exchange` with `-v`.
 * The probes do not log in (no key is offered); they stop after authentication fails.
 */
import { execFile } from 'node:child_process';

/** OpenSSH ≥ 9.9 beside Debian 12's 9.2, unpacked by `.ci/openssh-backport` (which .ci/run runs). */
export const OPENSSH_MLKEM = '/opt/openssh-backport/bin/ssh';

export interface KexProbe {
  /** The negotiated method, or undefined when the output never named one. */
  kex: string | undefined;
  output: string;
}

function run(file: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (_err, stdout, stderr) =>
      resolve(`${stdout}${stderr}`),
    );
  });
}

/** The method in OpenSSH's `debug1: kex: algorithm: NAME` line. */
export function opensshKex(output: string): string | undefined {
  return /^debug1: kex: algorithm: (\S+)$/m.exec(output)?.[1];
}

/** `ssh -v` against 127.0.0.1:`port`, optionally restricted to `kexAlgorithms`, as no user in particular. */
export async function probeOpensshKex(options: {
  port: number;
  ssh?: string;
  kexAlgorithms?: string;
  timeoutMs?: number;
}): Promise<KexProbe> {
  const args = [
    '-v',
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    // A probe of a throwaway server: nothing to pin, nothing to remember.
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'PubkeyAuthentication=no',
    '-o',
    'GSSAPIAuthentication=no',
    '-p',
    String(options.port),
  ];
  if (options.kexAlgorithms) args.push('-o', `KexAlgorithms=${options.kexAlgorithms}`);
  args.push('probe@127.0.0.1', 'true');
  const output = await run(options.ssh ?? 'ssh', args, options.timeoutMs ?? 15_000);
  return { kex: opensshKex(output), output };
}

/** plink's `Doing NTRU Prime / Curve25519 hybrid key exchange, using hash SHA-512 …` line. */
export async function probePlinkKex(options: {
  port: number;
  hostKeyFingerprint: string;
  timeoutMs?: number;
}): Promise<KexProbe> {
  const args = [
    '-ssh',
    '-v',
    '-batch',
    '-noagent',
    '-hostkey',
    options.hostKeyFingerprint,
    '-P',
    String(options.port),
    '-N',
    'probe@127.0.0.1',
  ];
  const output = await run('plink', args, options.timeoutMs ?? 15_000);
  return { kex: /^Doing (.+ key exchange)/m.exec(output)?.[1], output };
}

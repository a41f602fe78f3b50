/**
 * Reads what the API renders for customers with the programs that will read it: `sh` (syntax with
 * `sh -n`, then the argv it really passes, run next to files an unquoted glob would match), cron (`crontab` installs the line for a throwaway user; the command is
 * cut at `%` the way cron does, then goes to `sh`), `systemd-analyze verify` (unit syntax and
 * specifiers) and `ssh-keygen -l` (authorized_keys lines with their options). Each check batches
 * many inputs into one run of the program: they run for every tunnel a fuzzer creates.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serviceTagOf } from '../../shared/command-tag';
import { Customer, requireTools } from './customer';

/** Every program the checks run; `requireTools` fails loudly when one is missing. */
export const RENDER_CHECK_TOOLS = [
  'sh',
  'crontab',
  'systemd-analyze',
  'ssh-keygen',
  'runuser',
  'useradd',
  'userdel',
];

export function requireRenderCheckTools(): void {
  requireTools(...RENDER_CHECK_TOOLS);
}

/** The home directory the checks pretend the customer has (`~` in sh, `%h` in systemd). */
export const CUSTOMER_HOME = '/home/customer';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<Ran>((resolve) => {
    execFile(
      file,
      args,
      { ...options, timeout: 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** One command's outcome under `sh`: the syntax check and the argv its program was called with. */
export interface ShellOutcome {
  command: string;
  syntaxOk: boolean;
  syntaxError: string;
  /** `[program, ...args]` as the shell passed them, or undefined when no known program ran. */
  argv?: string[];
}

const RS = '\u001e';
const US = '\u001f';

/**
 * Names of files that an argument would match if the shell globbed it: each `[...]` replaced by
 * its first character, `?` by `x`, `*` by nothing. Create them in the working directory of a
 * command and an unquoted glob changes its argv instead of passing through unmatched.
 */
export function globTraps(argv: string[]): string[] {
  return argv
    .filter((arg) => /[[*?]/.test(arg))
    .map((arg) =>
      arg
        .replace(/\[([^\]])[^\]]*\]/g, '$1')
        .replaceAll('?', 'x')
        .replaceAll('*', ''),
    )
    .filter((name) => name !== '' && !name.includes('/') && name !== '.' && name !== '..')
    .filter((name) => Buffer.byteLength(name) <= 255);
}

/**
 * Runs each command through `sh -n -c` and then `sh -c` with `programs` replaced by shell functions
 * that print their arguments, in a directory holding the `traps` files (see `globTraps`).
 */
export async function shellOutcomes(
  commands: string[],
  programs: string[],
  traps: string[] = [],
): Promise<ShellOutcome[]> {
  if (commands.length === 0) return [];
  const dir = await mkdtemp(join(tmpdir(), 'tk-globs-'));
  try {
    const trapDir = join(dir, 'cwd');
    await mkdir(trapDir);
    for (const name of new Set(traps)) await writeFile(join(trapDir, name), '');
    // Each program prints its own name and arguments framed by unit separators.
    const functions = programs.map((p) => `${p}() { printf '%s${US}' ${p} "$@"; }`).join('\n');
    const script = [
      'i=0',
      'for c in "$@"; do',
      `  if err=$(sh -n -c "$c" 2>&1); then printf 'OK${US}'; else printf 'BAD${US}%s${US}' "$err"; fi`,
      `  ( ${functions.replaceAll('\n', '; ')}; eval "$c" ) 2>/dev/null`,
      `  printf '${RS}'`,
      'done',
    ].join('\n');
    const result = await run('sh', ['-c', script, 'sh', ...commands], {
      cwd: trapDir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: CUSTOMER_HOME },
    });
    const records = result.stdout.split(RS);
    return commands.map((command, i) => {
      const fields = (records[i] ?? '').split(US);
      const syntaxOk = fields[0] === 'OK';
      const rest = syntaxOk ? fields.slice(1) : fields.slice(2);
      const argv = rest.length > 1 || (rest[0] ?? '') !== '' ? rest.slice(0, -1) : undefined;
      return { command, syntaxOk, syntaxError: syntaxOk ? '' : (fields[1] ?? ''), argv };
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A crontab line as cron reads it: the schedule, the command up to the first unescaped `%`, the rest as input. */
export interface CronLine {
  schedule: string;
  command: string;
  input?: string;
}

/**
 * Splits a crontab line the way Debian's cron does: an `@keyword` or five time fields, then the
 * command; in the command, `\%` is a literal `%` and the first other `%` ends it (do_command.c).
 */
export function parseCronLine(line: string): CronLine {
  // cron separates fields with blanks only (a JS \s would also split at U+2028 and friends).
  const match = /^(@[^ \t]+|(?:[^ \t]+[ \t]+){4}[^ \t]+)[ \t]+([\s\S]*)$/.exec(line);
  if (!match) throw new Error(`not a crontab line: ${line}`);
  const [, schedule = '', rest = ''] = match;
  let command = '';
  let escaped = false;
  for (let i = 0; i < rest.length; i++) {
    const ch = rest.charAt(i);
    if (escaped) {
      command = ch === '%' ? `${command.slice(0, -1)}%` : command + ch;
      escaped = false;
      continue;
    }
    if (ch === '%') return { schedule, command, input: rest.slice(i + 1) };
    command += ch;
    escaped = ch === '\\';
  }
  return { schedule, command };
}

/**
 * Installs `lines` as the crontab of a throwaway user with the real `crontab`, which refuses a
 * file with a bad schedule, then removes it and the user. Returns crontab's complaint, if any.
 */
export async function crontabRefusal(lines: string[]): Promise<string | undefined> {
  if (lines.length === 0) return undefined;
  const customer = await Customer.create();
  try {
    const file = await customer.writeFile('crontab', `${lines.join('\n')}\n`, 0o644);
    const installed = await run('crontab', ['-u', customer.user, file]);
    if (installed.code !== 0) return installed.stderr.trim() || `crontab exited ${installed.code}`;
    const listed = await run('crontab', ['-u', customer.user, '-l']);
    if (listed.stdout !== `${lines.join('\n')}\n`) return 'crontab -l does not give back the lines installed';
    return undefined;
  } finally {
    await run('crontab', ['-u', customer.user, '-r']);
    await customer.dispose();
  }
}

/** The file name a rendered unit asks to be saved as (its first comment line). */
export function unitFileName(unit: string): string {
  const match = /^# Save as ~\/\.config\/systemd\/user\/(\S+\.service),/.exec(unit);
  if (!match?.[1]) throw new Error(`unit without its file name: ${unit.split('\n')[0]}`);
  return match[1];
}

/**
 * `systemd-analyze verify` of each unit, written under the name it asks for; returns the output
 * per unit file that systemd complained about (empty when every unit verifies).
 */
export async function systemdRefusals(units: string[]): Promise<Map<string, string>> {
  const refusals = new Map<string, string>();
  if (units.length === 0) return refusals;
  const dir = await mkdtemp(join(tmpdir(), 'tk-units-'));
  try {
    const files: string[] = [];
    for (const [i, unit] of units.entries()) {
      // One directory per unit: two tunnels could share a name only across tables, but be sure.
      const unitDir = join(dir, String(i));
      await mkdir(unitDir);
      const file = join(unitDir, unitFileName(unit));
      await writeFile(file, unit);
      files.push(file);
    }
    const result = await run('systemd-analyze', ['verify', '--man=no', '--generators=no', ...files]);
    const output = `${result.stdout}\n${result.stderr}`;
    for (const file of files) {
      const lines = output
        .split('\n')
        .filter((line) => line.includes(file) || line.includes(file.split('/').pop() ?? file));
      if (lines.length > 0) refusals.set(file, lines.join('\n'));
    }
    if (result.code !== 0 && refusals.size === 0)
      refusals.set('(all)', output.trim() || `exit ${result.code}`);
    return refusals;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The argv of a unit's `ExecStart=` as systemd builds it (systemd.service(5), "Command lines"):
 * words split at whitespace, double and single quotes, C escapes, then `%` specifiers (only `%h`
 * and `%%` expected) and `$$`. Throws on anything else, which the renderer must never write.
 */
export function execStartArgv(unit: string, home = CUSTOMER_HOME): string[] {
  const lines = unit.split('\n').filter((line) => line.startsWith('ExecStart='));
  if (lines.length !== 1) throw new Error(`expected one ExecStart=, got ${lines.length}`);
  const text = (lines[0] ?? '').slice('ExecStart='.length);
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ' || text[i] === '\t') i++;
    if (i >= text.length) break;
    let word = '';
    let quote: string | undefined;
    for (; i < text.length; i++) {
      const ch = text.charAt(i);
      if (!quote && (ch === ' ' || ch === '\t')) break;
      if (ch === '\\') {
        const next = text.charAt(++i);
        const simple: Record<string, string> = {
          n: '\n',
          t: '\t',
          '\\': '\\',
          '"': '"',
          "'": "'",
          ';': ';',
          ' ': ' ',
        };
        const value = simple[next];
        if (value === undefined) throw new Error(`unexpected escape \\${next} in ExecStart`);
        word += value;
      } else if (quote && ch === quote) {
        quote = undefined;
      } else if (!quote && (ch === '"' || ch === "'")) {
        quote = ch;
      } else {
        word += ch;
      }
    }
    if (quote) throw new Error('unterminated quote in ExecStart');
    words.push(word);
  }
  return words.map((word) =>
    word
      .replace(/%(.?)/g, (_, spec: string) => {
        if (spec === '%') return '%';
        if (spec === 'h') return home;
        throw new Error(`unexpected specifier %${spec} in ExecStart`);
      })
      .replace(/\$(\$|\{?[A-Za-z_])/g, (_, next: string) => {
        if (next === '$') return '$';
        throw new Error('unexpected environment variable in ExecStart');
      }),
  );
}

/**
 * `ssh-keygen -l -f` over a file of authorized_keys lines: the fingerprint OpenSSH reads from each
 * line, in order. ssh-keygen skips a line it cannot read, so a shorter list means a refusal.
 */
export async function authorizedKeysFingerprints(lines: string[]): Promise<string[]> {
  if (lines.length === 0) return [];
  const dir = await mkdtemp(join(tmpdir(), 'tk-authkeys-'));
  try {
    const file = join(dir, 'authorized_keys');
    await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    const result = await run('ssh-keygen', ['-l', '-f', file]);
    if (result.code !== 0) return [];
    return result.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(' ')[1] ?? '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The rendered parts of a tunnel object the checks read (a `Tunnel` from the API). */
export interface RenderedTunnel {
  id: string;
  type: string;
  service: { host: string; port: number };
  publicKeyFingerprint: string;
  authorizedKeysLine?: string;
  reverse?: {
    sshHost: string;
    sshPort: number;
    remotePort: number;
    commands: { ssh: string; autossh: string; systemd: string; crontab: string };
  };
}

const bracketed = (host: string) => (host.includes(':') ? `[${host}]` : host);

/**
 * Every rendered output of these tunnels read by its real parser, batched: `sh -n` and the argv of
 * `reverse.commands.ssh`/`autossh`, the crontab line (cron's `%` handling, `sh`, `crontab`), the
 * unit (`systemd-analyze verify`, ExecStart's argv), and `authorizedKeysLine` (`ssh-keygen -l`).
 * The four forms must pass the same arguments, with the service as the `-R` target and the
 * tunnel's key. Returns one line per problem, naming the tunnel; empty when all is well.
 */
export async function renderProblems(tunnels: RenderedTunnel[]): Promise<string[]> {
  const problems: string[] = [];
  const reverse = tunnels.filter((t) => t.reverse);
  const standard = tunnels.filter((t) => t.type === 'standard');

  const expected = reverse.map((t) => ({
    key: `${CUSTOMER_HOME}/.ssh/tunnelkeeper_${t.id}`,
    forward: `${serviceTagOf(t.service)}:${t.reverse?.remotePort}:${bracketed(t.service.host)}:${t.service.port}`,
    target: `${t.id}@${t.reverse?.sshHost}`,
  }));
  const crons = reverse.map((t) => parseCronLine(t.reverse?.commands.crontab ?? ''));
  const commands = reverse.flatMap((t, i) => [
    t.reverse?.commands.ssh ?? '',
    t.reverse?.commands.autossh ?? '',
    crons[i]?.command ?? '',
  ]);
  const traps = globTraps(expected.map((e) => e.forward));
  const outcomes = await shellOutcomes(commands, ['ssh', 'autossh'], traps);
  for (const [i, t] of reverse.entries()) {
    const want = expected[i];
    const cron = crons[i];
    if (!want || !cron || !t.reverse) continue;
    if (cron.schedule !== '@reboot' || cron.input !== undefined) {
      problems.push(`${t.id}: cron reads ${JSON.stringify(cron)} from the crontab line`);
    }
    const forms: [string, string[] | undefined][] = [];
    for (const [j, [form, prefix]] of (
      [
        ['ssh', ['ssh']],
        ['autossh', ['autossh', '-M', '0']],
        ['crontab', ['autossh', '-M', '0', '-f']],
      ] as const
    ).entries()) {
      const outcome = outcomes[i * 3 + j];
      if (!outcome?.syntaxOk) {
        problems.push(
          `${t.id}: sh -n refuses the ${form} command: ${outcome?.syntaxError} in ${outcome?.command}`,
        );
        continue;
      }
      const argv = outcome.argv ?? [];
      if (prefix.some((word, k) => argv[k] !== word)) {
        problems.push(`${t.id}: the ${form} command runs ${JSON.stringify(argv.slice(0, 5))}`);
        continue;
      }
      forms.push([form, argv.slice(prefix.length)]);
    }
    try {
      const argv = execStartArgv(t.reverse.commands.systemd);
      if (argv[0] !== '/usr/bin/ssh') problems.push(`${t.id}: the unit runs ${argv[0]}`);
      forms.push(['systemd', argv.slice(1)]);
    } catch (err) {
      problems.push(
        `${t.id}: the unit's ExecStart does not read back: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    for (const [form, args = []] of forms) {
      const at = (flag: string) => args[args.indexOf(flag) + 1];
      if (at('-R') !== want.forward)
        problems.push(`${t.id}: ${form} forwards ${at('-R')}, not ${want.forward}`);
      if (at('-i') !== want.key) problems.push(`${t.id}: ${form} uses the key ${at('-i')}, not ${want.key}`);
      if (args.at(-1) !== want.target) problems.push(`${t.id}: ${form} logs in as ${args.at(-1)}`);
      if (JSON.stringify(args) !== JSON.stringify(forms[0]?.[1])) {
        problems.push(`${t.id}: ${form} passes other arguments than ${forms[0]?.[0]}`);
      }
    }
  }
  const cronRefusal = await crontabRefusal(reverse.map((t) => t.reverse?.commands.crontab ?? ''));
  if (cronRefusal) problems.push(`crontab refuses the lines: ${cronRefusal}`);
  for (const [file, output] of await systemdRefusals(reverse.map((t) => t.reverse?.commands.systemd ?? ''))) {
    problems.push(`systemd-analyze verify refuses ${file}: ${output}`);
  }

  const lines = standard.map((t) => t.authorizedKeysLine ?? '');
  const fingerprints = await authorizedKeysFingerprints(lines);
  if (fingerprints.length !== lines.length) {
    problems.push(`ssh-keygen -l reads ${fingerprints.length} of ${lines.length} authorized_keys lines`);
  }
  for (const [i, t] of standard.entries()) {
    if (fingerprints.length === lines.length && fingerprints[i] !== t.publicKeyFingerprint) {
      problems.push(`${t.id}: ssh-keygen -l reads ${fingerprints[i]} from authorizedKeysLine`);
    }
    const permitOpen =
      /^no-agent-forwarding,no-X11-forwarding,no-pty,command="[^"\\]*",permitopen="([^"\\]*)" /.exec(
        t.authorizedKeysLine ?? '',
      )?.[1];
    if (permitOpen !== `${bracketed(t.service.host)}:${t.service.port}`) {
      problems.push(`${t.id}: authorizedKeysLine permits ${permitOpen}`);
    }
  }
  return problems;
}

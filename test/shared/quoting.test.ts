import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  authorizedKeysOptionValue,
  cronArg,
  cronHomePath,
  plinkArg,
  shellArg,
  shellHomePath,
  systemdArg,
} from '../../shared/quoting';
import {
  authorizedKeysFingerprints,
  CUSTOMER_HOME,
  crontabRefusal,
  execStartArgv,
  globTraps,
  parseCronLine,
  requireRenderCheckTools,
  shellOutcomes,
  systemdRefusals,
} from '../helpers/render-check';

beforeAll(() => requireRenderCheckTools());

/** Strings each parser must carry: everything hostile we know of, and no control characters. */
const HOSTILE = [
  '',
  ' ',
  'a b',
  "it's",
  '"',
  '\\',
  '\\%',
  '\\\\%',
  '%',
  '%%',
  '%h',
  '%i',
  '100%',
  '$',
  '$$',
  '$HOME',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${...} is the point
  '${HOME}',
  '$(id)',
  '`id`',
  ';',
  ';;',
  '&&',
  '|',
  '>x',
  '<x',
  '[::1]',
  '20001:[::1]:5432',
  '*',
  '?',
  '~',
  '~root',
  '#',
  '=x',
  '-',
  '--',
  '!',
  '{a,b}',
  '\u202e',
  '\u2028',
  '\u0085',
  'ü',
  '𝔘',
  'ｆｅ80::1',
];

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what renderers refuse
const CONTROL = /[\u0000-\u001f\u007f]/;
const arg = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom(...HOSTILE) },
  {
    weight: 3,
    arbitrary: fc
      .string({ unit: 'binary', maxLength: 20 })
      .filter((s) => isWellFormed(s) && !CONTROL.test(s)),
  },
  {
    weight: 2,
    arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 20 }).filter((s) => !CONTROL.test(s)),
  },
);
/** No lone surrogates: they cannot cross a process boundary (String#isWellFormed is ES2024). */
const isWellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8') === s;
const argLists = (runs: number) =>
  fc.sample(fc.array(arg, { minLength: 1, maxLength: 6 }), { numRuns: runs, seed: 12 });

describe('shellArg', () => {
  it.each([
    ['plain', 'plain'],
    ['IdentitiesOnly=yes', 'IdentitiesOnly=yes'],
    ['tun_abc@tunnels.example.com', 'tun_abc@tunnels.example.com'],
    ['20001:db.internal:5432', '20001:db.internal:5432'],
    ['20001:[::1]:5432', "'20001:[::1]:5432'"],
    ["it's", "'it'\\''s'"],
    ['', "''"],
    ['~x', "'~x'"],
    ['#x', "'#x'"],
    ['=x', "'=x'"],
    ['$(id)', "'$(id)'"],
  ])('writes %s as %s', (input, quoted) => {
    expect(shellArg(input)).toBe(quoted);
  });

  it.each(['a\nb', 'a\u0000b', 'a\rb', '\u007f'])('refuses the control character in %j', (input) => {
    expect(() => shellArg(input)).toThrow(RangeError);
    expect(() => cronArg(input)).toThrow(RangeError);
    expect(() => systemdArg(input)).toThrow(RangeError);
    expect(() => authorizedKeysOptionValue(input)).toThrow(RangeError);
  });

  it('passes any argument through sh unchanged, next to files its globs would match', async () => {
    const lists = argLists(300);
    const outcomes = await shellOutcomes(
      lists.map((args) => `p ${args.map(shellArg).join(' ')} ${shellHomePath('.ssh/k')}`),
      ['p'],
      lists.flatMap(globTraps),
    );
    for (const [i, outcome] of outcomes.entries()) {
      expect(outcome.syntaxOk, outcome.command).toBe(true);
      expect(outcome.argv, outcome.command).toEqual(['p', ...(lists[i] ?? []), `${CUSTOMER_HOME}/.ssh/k`]);
    }
  });
});

describe('plinkArg', () => {
  it.each([
    ['-hostkey', '-hostkey'],
    [
      'SHA256:0VZnr7bGSIKn9CCYIanZmpp1mq64rw49Muv6qhmDXr0+/',
      'SHA256:0VZnr7bGSIKn9CCYIanZmpp1mq64rw49Muv6qhmDXr0+/',
    ],
    ['.ssh/tunnelkeeper_tun_abc.ppk', '.ssh/tunnelkeeper_tun_abc.ppk'],
    ['tun_abc@tunnels.example.com', 'tun_abc@tunnels.example.com'],
    ['20001:[::1]:5432', '"20001:[::1]:5432"'],
    ['@splat', '"@splat"'],
  ])('writes %s as %s', (input, quoted) => {
    expect(plinkArg(input)).toBe(quoted);
  });

  // cmd.exe expands %VAR% even in quotes, PowerShell $var and `, sh $ and \; a comma is an array
  // to PowerShell, a space two words everywhere.
  it.each([
    '%USERPROFILE%',
    '$env:HOME',
    'a`b',
    'a"b',
    'a\\b',
    'a,b',
    'a b',
    "it's",
    '!x',
    'a&b',
    'a|b',
    '',
    'a\nb',
  ])('refuses %j, which cmd.exe, PowerShell or sh would change', (input) => {
    expect(() => plinkArg(input)).toThrow(RangeError);
  });

  it('passes what it accepts through sh unchanged, next to files its globs would match', async () => {
    const args = ['20001:[::1]:5432', '20001:[fd00:1:2::5]:1', 'x[a]', 'tun_a@h.example.', '@a', '-R'];
    const [outcome] = await shellOutcomes([`p ${args.map(plinkArg).join(' ')}`], ['p'], globTraps(args));
    expect(outcome?.syntaxOk).toBe(true);
    expect(outcome?.argv).toEqual(['p', ...args]);
  });
});

describe('cronArg', () => {
  it.each([
    ['plain', 'plain'],
    ['%', '\\%'],
    ['%h', '\\%h'],
    ['a b%c', "'a b'\\%c"],
    ['a\\%b', "'a\\'\\%b"],
    ['', "''"],
  ])('writes %s as %s', (input, quoted) => {
    expect(cronArg(input)).toBe(quoted);
  });

  it('passes any argument through cron and then sh unchanged; crontab installs every line', async () => {
    const lists = argLists(300);
    const lines = lists.map((args) => `@reboot p ${args.map(cronArg).join(' ')} ${cronHomePath('.ssh/k')}`);
    const commands = lines.map((line) => {
      const parsed = parseCronLine(line);
      expect(parsed.input, line).toBeUndefined();
      return parsed.command;
    });
    const outcomes = await shellOutcomes(commands, ['p'], lists.flatMap(globTraps));
    for (const [i, outcome] of outcomes.entries()) {
      expect(outcome.syntaxOk, outcome.command).toBe(true);
      expect(outcome.argv, lines[i]).toEqual(['p', ...(lists[i] ?? []), `${CUSTOMER_HOME}/.ssh/k`]);
    }
    expect(await crontabRefusal(lines)).toBeUndefined();
  });

  it('reads lines as cron does: an unescaped % ends the command', () => {
    expect(parseCronLine('@reboot echo a%b%c')).toEqual({
      schedule: '@reboot',
      command: 'echo a',
      input: 'b%c',
    });
    expect(parseCronLine('@reboot echo a\\%b')).toEqual({ schedule: '@reboot', command: 'echo a%b' });
    expect(parseCronLine('@reboot echo a\\\\%b')).toEqual({
      schedule: '@reboot',
      command: 'echo a\\\\',
      input: 'b',
    });
    expect(parseCronLine('*/5 * * * 1 echo a')).toEqual({ schedule: '*/5 * * * 1', command: 'echo a' });
  });
});

describe('systemdArg', () => {
  it.each([
    ['plain', 'plain'],
    ['20001:[::1]:5432', '20001:[::1]:5432'],
    ['%h', '%%h'],
    ['$HOME', '"$$HOME"'],
    ['a b', '"a b"'],
    ['say "hi"', '"say \\"hi\\""'],
    ['a\\b', '"a\\\\b"'],
    [';', '\\;'],
    ['', '""'],
  ])('writes %s as %s', (input, quoted) => {
    expect(systemdArg(input)).toBe(quoted);
  });

  it('keeps a trusted specifier prefix working: %h/ expands to the home', () => {
    const unit = `ExecStart=/usr/bin/ssh -i ${systemdArg('.ssh/k 1%', '%h/')}`;
    expect(execStartArgv(unit)).toEqual(['/usr/bin/ssh', '-i', `${CUSTOMER_HOME}/.ssh/k 1%`]);
  });

  it('passes any argument through ExecStart unchanged, in units systemd-analyze verifies', async () => {
    const lists = argLists(200);
    const units = lists.map((args, i) =>
      [
        `# Save as ~/.config/systemd/user/tk-quoting-${i}.service, then: systemctl --user enable --now tk`,
        '[Service]',
        `ExecStart=/usr/bin/ssh ${args.map((a) => systemdArg(a)).join(' ')} ${systemdArg('.ssh/k', '%h/')}`,
        '',
      ].join('\n'),
    );
    for (const [i, unit] of units.entries()) {
      expect(execStartArgv(unit), unit).toEqual([
        '/usr/bin/ssh',
        ...(lists[i] ?? []),
        `${CUSTOMER_HOME}/.ssh/k`,
      ]);
    }
    expect([...(await systemdRefusals(units))]).toEqual([]);
  });
});

describe('authorizedKeysOptionValue', () => {
  const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC5QPNK5LCiEIqf5y56r+I0iZe5f7W7N5YJeHR9Mb342';

  it.each(['a"b', 'a\\b', '\\'])('refuses %s, which sshd cannot read back', (value) => {
    expect(() => authorizedKeysOptionValue(value)).toThrow(RangeError);
  });

  it('quotes values that OpenSSH reads in an authorized_keys line', async () => {
    const values = ['[::1]:5432', 'db.internal:5432', 'a b,c:1', "it's:1", '%h:1', 'ü:1', ''];
    const lines = values.map(
      (v) => `restrict,port-forwarding,permitopen=${authorizedKeysOptionValue(v)} ${key}`,
    );
    const fingerprints = await authorizedKeysFingerprints(lines);
    expect(fingerprints).toHaveLength(values.length);
    expect(new Set(fingerprints).size).toBe(1);
  });
});

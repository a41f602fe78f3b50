/**
 * Quoting for each program that parses text we render for customers. Rendered text goes through
 * more parsers than the shell: `sh -c` (globs, `~`, `$`, quotes), systemd's `ExecStart=` (`%`
 * specifiers, `$` variables, C escapes, quotes; no globbing), cron (`%` ends the command) and
 * sshd's authorized_keys options (double quotes, `\"`). Each function turns one literal argument
 * into text that its parser reads back as exactly that argument, or throws `RangeError` for what
 * that parser cannot carry.
 */

// Characters that mean nothing to sh (nor bash or zsh) in an argument after the command name; `~`
// and `#` mean something at the start of a word, `=` in zsh, and `[`, `]`, `*`, `?` are globs.
const SHELL_SAFE = /^[A-Za-z0-9_@%+:,./-][A-Za-z0-9_@%+=:,./-]*$/;
// Nothing here is special to systemd's word splitting once `%`, `$` and `\` are escaped.
const SYSTEMD_SAFE = /^[A-Za-z0-9_@%+=:,./[\]~-]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

function refuseControl(text: string, where: string): void {
  if (CONTROL.test(text)) throw new RangeError(`control characters cannot be written into ${where}`);
}

/** One argument (not the command word) for `sh -c`: as is when nothing in it is special, else in single quotes. */
export function shellArg(arg: string): string {
  refuseControl(arg, 'a shell command');
  if (SHELL_SAFE.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A path under the user's home for `sh -c`: `~/` stays unquoted so the shell expands it. */
export function shellHomePath(relative: string): string {
  return relative === '' ? '~' : `~/${shellArg(relative)}`;
}

/**
 * One argument of a crontab command. cron cuts the command at the first `%` not written `\%`
 * (the rest becomes standard input) and removes that backslash, then hands the line to `sh -c`.
 * A `%` therefore goes outside the shell's quotes, as `\%`, where no other backslash precedes it.
 */
export function cronArg(arg: string): string {
  refuseControl(arg, 'a crontab line');
  if (arg === '') return "''";
  return arg
    .split('%')
    .map((piece) => (piece === '' ? '' : shellArg(piece)))
    .join('\\%');
}

/** A path under the user's home in a crontab command (see `cronArg`). */
export function cronHomePath(relative: string): string {
  return relative === '' ? '~' : `~/${cronArg(relative)}`;
}

/**
 * One argument of a systemd `ExecStart=`: `%` (specifiers) written `%%`, `$` (environment
 * variables) `$$`, and in double quotes with C escapes when it holds anything else special.
 * `specifier` is a trusted prefix such as `%h/` that systemd must expand (the home directory).
 */
export function systemdArg(arg: string, specifier = ''): string {
  refuseControl(arg, 'a systemd unit');
  const escaped = specifier + arg.replace(/[%$]/g, (c) => c + c);
  if (escaped === ';') return '\\;'; // a lone `;` separates commands
  if (escaped !== '' && SYSTEMD_SAFE.test(escaped)) return escaped;
  return `"${escaped.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/**
 * The value of an authorized_keys option, in double quotes. sshd (auth-options.c opt_dequote)
 * reads `\"` as a quote and nothing else as an escape, and Dropbear does the same: a quote, a
 * backslash or a line break cannot be carried safely.
 */
export function authorizedKeysOptionValue(value: string): string {
  refuseControl(value, 'an authorized_keys option');
  if (/["\\]/.test(value)) throw new RangeError('an authorized_keys option value cannot hold " or \\');
  return `"${value}"`;
}

// Bare, these mean nothing to cmd.exe, PowerShell (a comma would make an array, a leading `@` a
// splat) or sh; inside double quotes none of the three changes them or brackets, which sh globs.
const PLINK_SAFE = /^[A-Za-z0-9_+:./=-][A-Za-z0-9_@+:./=-]*$/;
const PLINK_QUOTABLE = /^[A-Za-z0-9_@+:./=[\]-]+$/;

/**
 * One argument of a plink command that cmd.exe, PowerShell and sh (where the tests run it) all read
 * back as exactly that argument: as is, or in double quotes (brackets glob in sh). Anything that
 * one of them would expand or escape (`%`, `$`, `!`, quotes, backslashes) is refused.
 */
export function plinkArg(arg: string): string {
  refuseControl(arg, 'a plink command');
  if (PLINK_SAFE.test(arg)) return arg;
  if (PLINK_QUOTABLE.test(arg)) return `"${arg}"`;
  throw new RangeError('a plink argument may hold only letters, digits and _@+:./=[]-');
}

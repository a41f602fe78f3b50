/**
 * The user documentation holds together: every relative link in README.md and docs/ reaches a file
 * of the repository (and a heading, for `#anchor` links into Markdown), docs/README.md indexes
 * every page, and docs/operations.md names every environment variable shared/config.ts reads (the
 * list taken from the code itself) and no variable the code does not read. No network.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parseEnv } from '../../shared/config';

const REPO = resolve(import.meta.dirname, '../..');
const CONFIG = join(REPO, 'shared/config.ts');
const OPERATIONS = 'docs/operations.md';

/** README.md and every Markdown file under docs/, as repository-relative paths. */
function markdownFiles(): string[] {
  const docs = readdirSync(join(REPO, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.md'))
    .map((file) => join('docs', file).split(sep).join('/'));
  return ['README.md', ...docs.sort()];
}

/** The text outside fenced code blocks and inline code spans: what renders as prose. */
function prose(markdown: string): string {
  let inFence = false;
  const kept: string[] = [];
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) {
      inFence = !inFence;
      kept.push('');
      continue;
    }
    kept.push(inFence ? '' : line.replace(/`[^`]*`/g, '``'));
  }
  return kept.join('\n');
}

/** Link targets: inline links and images, and reference definitions. */
function linkTargets(markdown: string): string[] {
  const text = prose(markdown);
  const inline = [...text.matchAll(/!?\[(?:[^[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)];
  const references = [...text.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?/gm)];
  return [...inline, ...references].map((match) => match[1] ?? '');
}

/** GitHub's anchor for a heading's text: lower case, punctuation dropped, spaces as hyphens. */
function slugOf(heading: string): string {
  const rendered = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase();
  return rendered.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** The anchors of a Markdown file's headings, numbered as GitHub numbers repeats (`-1`, `-2`). */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    const heading = inFence ? undefined : /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const slug = slugOf(heading);
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/** What is wrong with one link of `file`, or undefined when it resolves. */
function problemWith(file: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) return undefined; // http:, mailto:, ...
  const [rawPath = '', anchor] = target.split('#', 2);
  const path = decodeURIComponent(rawPath);
  const absolute =
    path === ''
      ? join(REPO, file)
      : path.startsWith('/')
        ? join(REPO, path)
        : resolve(REPO, dirname(file), path);
  const inRepo = relative(REPO, absolute);
  if (inRepo.startsWith('..') || resolve(REPO, inRepo) !== absolute) {
    return 'leads outside the repository, which readers do not have';
  }
  let isFile: boolean;
  try {
    isFile = statSync(absolute).isFile();
  } catch {
    return 'no such file or directory';
  }
  if (anchor === undefined || anchor === '' || !isFile || !absolute.endsWith('.md')) return undefined;
  const anchors = anchorsOf(readFileSync(absolute, 'utf8'));
  return anchors.has(anchor) ? undefined : `no heading #${anchor} in ${inRepo}`;
}

/**
 * The variables shared/config.ts reads: the keys of its `envSchema = z.object({...})`, read from
 * the source (the schema is private to the module). A member this cannot name fails, so a change
 * of how the schema is written shows here rather than shrinking the list.
 */
function configVariables(): string[] {
  const source = ts.createSourceFile(CONFIG, readFileSync(CONFIG, 'utf8'), ts.ScriptTarget.Latest, true);
  let names: string[] | undefined;
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.name.text === 'envSchema') {
      const call = node.initializer;
      const shape = call && ts.isCallExpression(call) ? call.arguments[0] : undefined;
      if (!shape || !ts.isObjectLiteralExpression(shape)) {
        throw new Error(
          'shared/config.ts: envSchema is no longer `z.object({...})`; teach this test the new form',
        );
      }
      names = shape.properties.map((member) => {
        const name = member.name;
        if (name && (ts.isIdentifier(name) || ts.isStringLiteral(name))) return name.text;
        throw new Error(`shared/config.ts: envSchema member without a plain name: ${member.getText(source)}`);
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  if (!names)
    throw new Error('shared/config.ts: no `const envSchema` found; teach this test where the variables are');
  return names;
}

/** The text of a `## ` section of a Markdown file, heading to the next `## `. */
function section(markdown: string, title: string): string {
  const lines = markdown.split('\n');
  const start = lines.indexOf(`## ${title}`);
  if (start === -1) throw new Error(`no section "## ${title}"`);
  const end = lines.findIndex((line, i) => i > start && line.startsWith('## '));
  return lines.slice(start, end === -1 ? undefined : end).join('\n');
}

const ENV_NAME = /`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,})`/g;

describe('the documentation', () => {
  const files = markdownFiles();

  it('links only to files and headings that exist in the repository', () => {
    expect(files).toEqual(expect.arrayContaining(['README.md', 'docs/README.md', OPERATIONS]));
    const broken: string[] = [];
    let checked = 0;
    for (const file of files) {
      for (const target of linkTargets(readFileSync(join(REPO, file), 'utf8'))) {
        checked++;
        const problem = problemWith(file, target);
        if (problem) broken.push(`${file}: (${target}) ${problem}`);
      }
    }
    expect(checked).toBeGreaterThan(50);
    expect(broken).toEqual([]);
  });

  it('computes anchors as GitHub does', () => {
    const page =
      '# Title\n## `service_unreachable` (reverse)\n```sh\n# not a heading\n```\n## Title\n### A [link](x.md), too';
    expect([...anchorsOf(page)]).toEqual(['title', 'service_unreachable-reverse', 'title-1', 'a-link-too']);
    expect(problemWith('docs/concepts.md', '../../shared/CONTRACT.md')).toMatch(/outside the repository/);
    expect(problemWith('docs/concepts.md', 'troubleshooting.md#no-such-code')).toMatch(/no heading/);
  });

  it('indexes every page of docs/ in docs/README.md', () => {
    const index = new Set(linkTargets(readFileSync(join(REPO, 'docs/README.md'), 'utf8')));
    const pages = files.filter((file) => file.startsWith('docs/') && file !== 'docs/README.md');
    const missing = pages.filter((page) => !index.has(page.slice('docs/'.length)));
    expect(missing).toEqual([]);
  });

  it(`names every variable shared/config.ts reads in ${OPERATIONS}, with no others`, () => {
    const variables = configVariables();
    // The source read is the schema parseEnv runs: every variable it gives a default is among them.
    expect(variables).toEqual(expect.arrayContaining(Object.keys(parseEnv({}))));
    expect(variables.length).toBeGreaterThan(40);

    const configuration = section(readFileSync(join(REPO, OPERATIONS), 'utf8'), 'Configuration');
    const named = new Set([...configuration.matchAll(ENV_NAME)].map((match) => match[1]));
    const undocumented = variables.filter((name) => !named.has(name));
    expect
      .soft(undocumented, `variables shared/config.ts reads that ${OPERATIONS}#configuration does not name`)
      .toEqual([]);

    // Each table row documents the variables of its first cell: those must exist.
    const documented = configuration
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .flatMap((line) => [...(line.split('|')[1] ?? '').matchAll(ENV_NAME)].map((match) => match[1] ?? ''));
    const unknown = documented.filter((name) => !variables.includes(name));
    expect(unknown, `variables ${OPERATIONS} documents that shared/config.ts does not read`).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { type Figure, formatNumber, formatTable, ratioOf } from '../../bench/report';

const figure = (over: Partial<Figure>): Figure => ({
  id: 'x',
  label: 'Reverse bulk',
  unit: 'MB/s',
  ours: 600,
  openssh: 400,
  ...over,
});

describe('bench report', () => {
  it.each([
    [1234.4, '1,234'],
    [12.34, '12.3'],
    [1.234, '1.23'],
    [0.7712, '0.77'],
    [null, '–'],
    [Number.NaN, '–'],
  ])('formats %s as %s', (value, text) => {
    expect(formatNumber(value)).toBe(text);
  });

  it('gives the ratio ours ÷ OpenSSH only when both were measured', () => {
    expect(ratioOf(figure({}))).toBe(1.5);
    expect(ratioOf(figure({ openssh: null }))).toBeNull();
    expect(ratioOf(figure({ openssh: 0 }))).toBeNull();
  });

  it('renders one aligned Markdown row per figure with the ratio and the verdict', () => {
    const table = formatTable([
      figure({ target: { text: '≥ 1.5× sshd', met: true } }),
      figure({
        label: 'Idle tunnel',
        unit: 'KB',
        ours: 40,
        openssh: 1800,
        target: { text: '≤ 60 KB', met: false },
      }),
      figure({ label: 'Login rate', unit: 'per s', ours: null, target: { text: '≥ sshd', met: null } }),
    ]);
    const lines = table.split('\n');
    expect(lines).toHaveLength(5);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    expect(lines[2]).toMatch(
      /^\| Reverse bulk \(MB\/s\) +\| +600 \| +400 \| +1\.50× \| ≥ 1\.5× sshd +\| met +\|$/,
    );
    expect(lines[3]).toContain('0.022× (1/45)');
    expect(lines[3]).toContain('**missed**');
    expect(lines[4]).toContain('not measured');
  });
});

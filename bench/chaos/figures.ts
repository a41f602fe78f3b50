/** What a chaos scenario reports: each figure with its unit, and its target when it has one. */
export interface ChaosFigure {
  name: string;
  value: number;
  unit: string;
  /** E.g. "<= 20 ms". */
  target?: string;
  /** Whether the target held. */
  ok?: boolean;
}

/** The figures as an aligned table, a mark before those whose target failed. */
export function formatFigures(scenario: string, figures: readonly ChaosFigure[]): string {
  const width = Math.max(...figures.map((f) => f.name.length));
  const lines = figures.map((f) => {
    const mark = f.ok === false ? '✗' : f.ok === true ? '✓' : ' ';
    const value = `${f.value}${f.unit ? ` ${f.unit}` : ''}`;
    return `  ${mark} ${f.name.padEnd(width)}  ${value.padStart(14)}${f.target ? `   target ${f.target}` : ''}`;
  });
  return [`${scenario}`, ...lines].join('\n');
}

/**
 * How the benchmarks summarise and print what they measured: percentiles
 * of a sample, in milliseconds, in one aligned table per run.
 */

/** The column headings every benchmark table shares. */
export const TABLE_HEADER = [
  'scenario',
  'upstream p50',
  'gateway p50',
  'added p50',
  'upstream p99',
  'gateway p99',
  'added p99',
] as const;

/**
 * One table row: p50 and p99 of the baseline (the upstream called
 * directly), of the same measure through the gateway, and their
 * difference, which is what the gateway adds.
 */
export function comparisonRow(
  label: string,
  upstream: readonly number[],
  gateway: readonly number[],
): string[] {
  const row = [label];
  const [u50, g50, u99, g99] = [
    percentile(upstream, 50),
    percentile(gateway, 50),
    percentile(upstream, 99),
    percentile(gateway, 99),
  ];
  row.push(ms(u50), ms(g50), ms(g50 - u50), ms(u99), ms(g99), ms(g99 - u99));
  return row;
}

export function printTable(rows: readonly (readonly string[])[]): void {
  const all = [TABLE_HEADER, ...rows];
  const widths = TABLE_HEADER.map((_, i) =>
    Math.max(...all.map((r) => (r[i] ?? '').length)),
  );
  for (const row of all) {
    console.log(
      row
        .map((cell, i) =>
          i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!),
        )
        .join('  '),
    );
  }
}

/**
 * Rows under their own `header`, for the in-process benchmarks whose
 * columns are not the upstream-versus-gateway ones: the first column
 * left-aligned, the numbers right-aligned.
 */
export function printAligned(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): void {
  const all = [header, ...rows];
  const widths = header.map((_, i) =>
    Math.max(...all.map((r) => (r[i] ?? '').length)),
  );
  for (const row of all) {
    console.log(
      row
        .map((cell, i) =>
          i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0),
        )
        .join('  '),
    );
  }
}

/** The nearest-rank percentile: the smallest value with p% at or below it. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(
    sorted.length - 1,
    Math.ceil((p / 100) * sorted.length) - 1,
  );
  return sorted[Math.max(0, index)] ?? Number.NaN;
}

export function ms(value: number): string {
  return `${value.toFixed(2)} ms`;
}

/** Microseconds, to a tenth. */
export function micros(value: number): string {
  return `${value.toFixed(1)} µs`;
}

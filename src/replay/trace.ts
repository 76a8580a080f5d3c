/**
 * Request traces to replay: one row per request, with its arrival time and
 * its prompt and output token counts.
 *
 * Reads the Azure LLM inference trace format (Patel et al., "Splitwise",
 * ISCA 2024; CC-BY-4.0): `TIMESTAMP,ContextTokens,GeneratedTokens`, with
 * naive timestamps such as `2023-11-16 18:17:03.9799600`. Only the gaps
 * between timestamps are used, to pace a replay.
 */
import { createReadStream } from 'node:fs';

import { parse } from 'csv-parse';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

export interface TraceRow {
  /** 0-based position in file order. */
  readonly index: number;
  /** Arrival time in ms, relative to an arbitrary origin. */
  readonly at: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

export class TraceError extends Error {
  override readonly name = 'TraceError';
}

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?$/;

/** Reads a whole Azure-format trace file. */
export async function readAzureTrace(
  path: string,
  limit = Number.POSITIVE_INFINITY,
): Promise<TraceRow[]> {
  const rows: TraceRow[] = [];
  const input = createReadStream(path);
  const parser = input.pipe(
    parse({ columns: true, skip_empty_lines: true, trim: true }),
  );
  // A file that cannot be read fails the iteration below, not the process.
  input.once('error', (error) =>
    parser.destroy(
      new TraceError(`cannot read trace ${path}: ${error.message}`),
    ),
  );
  for await (const record of parser as AsyncIterable<Record<string, string>>) {
    if (rows.length >= limit) break;
    const line = rows.length + 2;
    if (rows.length === 0) checkColumns(record, path);
    rows.push({
      index: rows.length,
      at: parseTimestamp(record['TIMESTAMP'], path, line),
      inputTokens: parseCount(
        record['ContextTokens'],
        'ContextTokens',
        path,
        line,
      ),
      outputTokens: parseCount(
        record['GeneratedTokens'],
        'GeneratedTokens',
        path,
        line,
      ),
    });
  }
  if (rows.length === 0) {
    throw new TraceError(
      `${path} has no rows; expected a header ` +
        'TIMESTAMP,ContextTokens,GeneratedTokens and one row per request',
    );
  }
  return rows;
}

/**
 * A built-in workload from a fixed seed, for demos on a machine without
 * trace files: prompt sizes spread over 20-4,000 tokens, outputs over
 * 5-600, about 20 arrivals a second.
 */
export function builtInWorkload(count: number, seed = 2024): TraceRow[] {
  const rng = xoroshiro128plus(seed);
  const rows: TraceRow[] = [];
  let at = 0;
  for (let index = 0; index < count; index++) {
    // Squaring a uniform draw skews sizes small, as real prompts are.
    const u = uniformInt(rng, 0, 1_000_000) / 1_000_000;
    rows.push({
      index,
      at,
      inputTokens: 20 + Math.floor(u * u * 3_980),
      outputTokens: uniformInt(rng, 5, 600),
    });
    at += uniformInt(rng, 1, 100);
  }
  return rows;
}

const COLUMNS = ['TIMESTAMP', 'ContextTokens', 'GeneratedTokens'] as const;

function checkColumns(record: Record<string, string>, path: string): void {
  const missing = COLUMNS.filter((column) => !(column in record));
  if (missing.length > 0) {
    throw new TraceError(
      `${path} lacks the column(s) ${missing.join(', ')}; an Azure LLM ` +
        `inference trace starts with the header ${COLUMNS.join(',')}`,
    );
  }
}

function parseTimestamp(
  text: string | undefined,
  path: string,
  line: number,
): number {
  const match = text === undefined ? null : TIMESTAMP.exec(text);
  if (!match) {
    throw new TraceError(
      `${path}:${line}: TIMESTAMP "${text}" is not a timestamp`,
    );
  }
  const millis = Date.parse(`${match[1]}T${match[2]}Z`);
  const fraction = match[3] ?? '';
  return millis + Number(`0.${fraction || '0'}`) * 1000;
}

function parseCount(
  text: string | undefined,
  column: string,
  path: string,
  line: number,
): number {
  if (text === undefined || !/^\d+$/.test(text)) {
    throw new TraceError(`${path}:${line}: ${column} "${text}" is not a count`);
  }
  return Number(text);
}

/**
 * Reading the Bedrock recordings of `../shared/data/wire` the way a client
 * would, independently of the code under test.
 */
import { readFileSync } from 'node:fs';

import type { NormalizedUsage } from '../../../src/metering/usage.js';
import { sharedFile } from '../../helpers/shared-data.js';

export const WIRE = 'wire';

export function wireFile(name: string): string {
  return sharedFile(`${WIRE}/${name}`);
}

export function readJson(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(wireFile(name), 'utf8')) as Record<
    string,
    unknown
  >;
}

/** The lines of a `.events.jsonl` recording, parsed. */
export function readJsonLines(name: string): Record<string, unknown>[] {
  return readFileSync(wireFile(name), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/**
 * A `.events.jsonl` recording as SDK event objects: the vercel form is
 * one already; the pydantic form `{headers, payload}` is keyed by its
 * `:event-type`.
 */
export function eventObjects(name: string): Record<string, unknown>[] {
  return readJsonLines(name).map((line) => {
    const headers = line['headers'] as Record<string, string> | undefined;
    if (headers === undefined) return line;
    return { [headers[':event-type'] as string]: line['payload'] };
  });
}

/** Normalised usage with every class stated; units default to none. */
export function usage(
  counts: Partial<Omit<NormalizedUsage, 'units'>> & {
    units?: Record<string, number>;
  },
): NormalizedUsage {
  return {
    inputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    outputTokens: 0,
    reasoningTokens: 0,
    units: {},
    ...counts,
  };
}

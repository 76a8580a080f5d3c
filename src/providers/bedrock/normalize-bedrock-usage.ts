/**
 * Bedrock Converse usage → normalised usage.
 *
 * Bedrock counts cached tokens *outside* `inputTokens`: a prompt of 1324
 * tokens that hit the cache reads `inputTokens: 2` beside
 * `cacheReadInputTokens: 1322`, and `totalTokens` is the sum of all four
 * counts (2 + 5 + 1322 = 1329 with 5 output tokens). Output tokens include
 * any reasoning, which Bedrock does not report apart.
 *
 * Older answers repeat the cache counts under legacy names
 * (`cacheReadInputTokenCount`, `cacheWriteInputTokenCount`); a legacy
 * count is read only when the current one is absent, and the two must
 * agree when both are there. `cacheDetails` splits cache writes by cache
 * lifetime (`5m`, `1h`), which are priced apart. `serverToolUsage` counts
 * server-side tool calls, kept as named units.
 *
 * The same block arrives in Converse answers and in ConverseStream's final
 * `metadata` event.
 *
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_TokenUsage.html
 */
import {
  isRecord,
  readCount,
  UsageParseError,
  type NormalizedUsage,
} from '../../metering/usage.js';

/** A count Bedrock reports under a current name and, once, a legacy one. */
interface CountField {
  readonly current: string;
  readonly legacy: string | null;
}

const FIELDS = {
  input: { current: 'inputTokens', legacy: null },
  output: { current: 'outputTokens', legacy: null },
  cacheRead: {
    current: 'cacheReadInputTokens',
    legacy: 'cacheReadInputTokenCount',
  },
  cacheWrite: {
    current: 'cacheWriteInputTokens',
    legacy: 'cacheWriteInputTokenCount',
  },
} as const satisfies Record<string, CountField>;

/** Cache lifetimes named in `cacheDetails`, by the usage class they bill. */
const CACHE_TTL_CLASSES = {
  '5m': 'cacheWriteTokens',
  '1h': 'cacheWrite1hTokens',
} as const;

/** The prefix of the named units that count server-side tool calls. */
export const SERVER_TOOL_UNIT_PREFIX = 'serverTool.';

/**
 * @example
 * normalizeBedrockUsage({
 *   inputTokens: 2, outputTokens: 5, totalTokens: 1329,
 *   cacheReadInputTokens: 1322, cacheWriteInputTokens: 0,
 * }); // { inputTokens: 2, cacheReadTokens: 1322, outputTokens: 5, … }
 */
export function normalizeBedrockUsage(raw: unknown): NormalizedUsage {
  if (!isRecord(raw)) {
    throw new UsageParseError('usage is not an object');
  }
  const input = readField(raw, FIELDS.input);
  const output = readField(raw, FIELDS.output);
  if (input === undefined || output === undefined) {
    throw new UsageParseError('usage lacks inputTokens or outputTokens');
  }
  const cacheRead = readField(raw, FIELDS.cacheRead) ?? 0;
  const writes = cacheWrites(raw);

  const total = readCount(raw, 'totalTokens');
  const sum = input + output + cacheRead + writes.fiveMinutes + writes.oneHour;
  if (total !== undefined && total !== sum) {
    throw new UsageParseError(
      `totalTokens ${total} is not the sum of its parts ` +
        `(${input} input + ${output} output + ${cacheRead} cache read + ` +
        `${writes.fiveMinutes + writes.oneHour} cache write = ${sum})`,
    );
  }

  return {
    inputTokens: input,
    cacheReadTokens: cacheRead,
    cacheWriteTokens: writes.fiveMinutes,
    cacheWrite1hTokens: writes.oneHour,
    outputTokens: output,
    reasoningTokens: 0,
    units: serverToolUnits(raw['serverToolUsage']),
  };
}

/** A count under its current name, else its legacy one; never two values. */
function readField(
  raw: Readonly<Record<string, unknown>>,
  field: CountField,
): number | undefined {
  const current = readCount(raw, field.current);
  const legacy =
    field.legacy === null ? undefined : readCount(raw, field.legacy);
  if (current !== undefined && legacy !== undefined && current !== legacy) {
    throw new UsageParseError(
      `usage says ${field.current} ${current} but ${field.legacy} ${legacy}`,
    );
  }
  return current ?? legacy;
}

/**
 * Cache writes by lifetime. Without `cacheDetails` every write is at the
 * default (five-minute) lifetime; with it, the details must add up to the
 * write count, and a lifetime we cannot price is refused.
 */
function cacheWrites(raw: Readonly<Record<string, unknown>>): {
  fiveMinutes: number;
  oneHour: number;
} {
  const written = readField(raw, FIELDS.cacheWrite);
  const details = raw['cacheDetails'];
  if (details === undefined || details === null) {
    return { fiveMinutes: written ?? 0, oneHour: 0 };
  }
  if (!Array.isArray(details)) {
    throw new UsageParseError('usage field cacheDetails is not an array');
  }

  const byClass = { cacheWriteTokens: 0, cacheWrite1hTokens: 0 };
  for (const detail of details as unknown[]) {
    if (!isRecord(detail)) {
      throw new UsageParseError('a cacheDetails entry is not an object');
    }
    const ttl = detail['ttl'];
    if (typeof ttl !== 'string' || !Object.hasOwn(CACHE_TTL_CLASSES, ttl)) {
      throw new UsageParseError(
        `cacheDetails names cache lifetime ${JSON.stringify(ttl)}, ` +
          'which is neither 5m nor 1h',
      );
    }
    const tokens = readCount(detail, 'inputTokens');
    if (tokens === undefined) {
      throw new UsageParseError(`cacheDetails entry ${ttl} lacks inputTokens`);
    }
    byClass[CACHE_TTL_CLASSES[ttl as keyof typeof CACHE_TTL_CLASSES]] += tokens;
  }

  const detailed = byClass.cacheWriteTokens + byClass.cacheWrite1hTokens;
  if (written !== undefined && written !== detailed) {
    throw new UsageParseError(
      `cacheWriteInputTokens ${written} is not the sum of cacheDetails ` +
        `(${detailed})`,
    );
  }
  return {
    fiveMinutes: byClass.cacheWriteTokens,
    oneHour: byClass.cacheWrite1hTokens,
  };
}

/**
 * `serverToolUsage` as named units: `{ webSearch: 2 }` becomes
 * `serverTool.webSearch: 2`, a nested `{ webSearch: { requests: 2 } }`
 * becomes `serverTool.webSearch.requests: 2`. Zero counts are left out.
 * Anything but counts is refused rather than left unbilled.
 */
function serverToolUnits(raw: unknown): Record<string, number> {
  const units: Record<string, number> = {};
  if (raw === undefined || raw === null) return units;
  if (!isRecord(raw)) {
    throw new UsageParseError('usage field serverToolUsage is not an object');
  }

  const collect = (block: Record<string, unknown>, prefix: string): void => {
    for (const [name, value] of Object.entries(block)) {
      if (isRecord(value)) {
        collect(value, `${prefix}${name}.`);
        continue;
      }
      const count = readCount(block, name);
      if (count === undefined) continue;
      if (count > 0) units[`${prefix}${name}`] = count;
    }
  };
  collect(raw, SERVER_TOOL_UNIT_PREFIX);
  return units;
}

/**
 * Anthropic Messages usage → normalised usage.
 *
 * Anthropic counts cached tokens *outside* `input_tokens`: a prompt of 1592
 * tokens of which 1590 were read from the cache reads as `input_tokens: 2`
 * plus `cache_read_input_tokens: 1590`. Cache writes are split by lifetime
 * in `cache_creation` (5 minutes or 1 hour), each priced apart; an older
 * block without that breakdown wrote everything at the 5-minute default.
 *
 * Thinking tokens are inside `output_tokens`, which is how Anthropic bills
 * them. For most of its life the Messages API did not report the thinking
 * share apart, so `reasoningTokens` is 0 unless the block carries the newer
 * `output_tokens_details.thinking_tokens` (informational only: billing reads
 * `outputTokens`).
 *
 * Server-side tool calls (`server_tool_use.web_search_requests` and any
 * other counter there) are priced per call and become named units.
 *
 * @see https://docs.anthropic.com/en/api/messages#response-usage
 * @see https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching
 */
import {
  isRecord,
  readCount,
  UsageParseError,
  type NormalizedUsage,
} from '../../metering/usage.js';

type TokenClassField =
  | 'inputTokens'
  | 'cacheReadTokens'
  | 'cacheWriteTokens'
  | 'cacheWrite1hTokens'
  | 'outputTokens';

/** Top-level counts that map one to one onto a token class. */
const TOP_LEVEL_COUNTS: readonly {
  readonly field: string;
  readonly to: TokenClassField;
  readonly required: boolean;
}[] = [
  { field: 'input_tokens', to: 'inputTokens', required: true },
  { field: 'cache_read_input_tokens', to: 'cacheReadTokens', required: false },
  { field: 'output_tokens', to: 'outputTokens', required: true },
];

/** `cache_creation` parts, by cache lifetime. */
const CACHE_WRITE_PARTS: Readonly<Record<string, TokenClassField>> = {
  ephemeral_5m_input_tokens: 'cacheWriteTokens',
  ephemeral_1h_input_tokens: 'cacheWrite1hTokens',
};

/**
 * Normalises one Anthropic usage block (a response's `usage`, or the merged
 * stream usage from `mergeAnthropicStreamUsage`).
 *
 * @example
 * normalizeAnthropicUsage({
 *   input_tokens: 2,
 *   cache_read_input_tokens: 1590,
 *   output_tokens: 4,
 * }); // { inputTokens: 2, cacheReadTokens: 1590, outputTokens: 4, … }
 */
export function normalizeAnthropicUsage(raw: unknown): NormalizedUsage {
  if (!isRecord(raw)) {
    throw new UsageParseError('usage is not an object');
  }
  const counts: Record<TokenClassField, number> = {
    inputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    outputTokens: 0,
  };
  for (const { field, to, required } of TOP_LEVEL_COUNTS) {
    const count = readCount(raw, field);
    if (count === undefined && required) {
      throw new UsageParseError(`usage lacks ${field}`);
    }
    counts[to] = count ?? 0;
  }
  Object.assign(counts, cacheWrites(raw));

  return {
    ...counts,
    reasoningTokens: thinkingTokens(raw, counts.outputTokens),
    units: serverToolUnits(raw),
  };
}

/** The thinking share of the output, where reported; else 0. */
function thinkingTokens(
  raw: Readonly<Record<string, unknown>>,
  outputTokens: number,
): number {
  const details = optionalObject(raw, 'output_tokens_details');
  const thinking =
    details === undefined ? 0 : (readCount(details, 'thinking_tokens') ?? 0);
  if (thinking > outputTokens) {
    throw new UsageParseError(
      `thinking_tokens ${thinking} is more than output_tokens ${outputTokens}`,
    );
  }
  return thinking;
}

/** Cache writes by lifetime, checked against their total. */
function cacheWrites(
  raw: Readonly<Record<string, unknown>>,
): Pick<NormalizedUsage, 'cacheWriteTokens' | 'cacheWrite1hTokens'> {
  const total = readCount(raw, 'cache_creation_input_tokens') ?? 0;
  const breakdown = optionalObject(raw, 'cache_creation');
  if (breakdown === undefined) {
    return { cacheWriteTokens: total, cacheWrite1hTokens: 0 };
  }

  const parts = { cacheWriteTokens: 0, cacheWrite1hTokens: 0 };
  let sum = 0;
  for (const field of Object.keys(breakdown)) {
    const to = CACHE_WRITE_PARTS[field];
    const count = readCount(breakdown, field) ?? 0;
    if (to === undefined) {
      // A lifetime we do not know would be priced wrongly, or not at all.
      if (count > 0) {
        throw new UsageParseError(
          `usage cache_creation.${field} is a cache lifetime Tollgate ` +
            'cannot price',
        );
      }
      continue;
    }
    parts[to as keyof typeof parts] = count;
    sum += count;
  }
  if (sum !== total) {
    throw new UsageParseError(
      `cache_creation parts sum to ${sum}, but ` +
        `cache_creation_input_tokens is ${total}`,
    );
  }
  return parts;
}

/** Every counter in `server_tool_use` with a non-zero count. */
function serverToolUnits(
  raw: Readonly<Record<string, unknown>>,
): Record<string, number> {
  const units: Record<string, number> = {};
  const serverToolUse = optionalObject(raw, 'server_tool_use');
  if (serverToolUse === undefined) return units;
  for (const field of Object.keys(serverToolUse)) {
    const count = readCount(serverToolUse, field);
    if (count !== undefined && count > 0) units[field] = count;
  }
  return units;
}

function optionalObject(
  raw: Readonly<Record<string, unknown>>,
  field: string,
): Readonly<Record<string, unknown>> | undefined {
  const value = raw[field];
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) {
    throw new UsageParseError(`usage field ${field} is not an object`);
  }
  return value;
}

/**
 * The final usage of a stream: `message_start`'s block overlaid with
 * `message_delta`'s.
 *
 * `message_start` usage is provisional. `message_delta` holds the final,
 * cumulative counts: always `output_tokens`, and in newer responses the
 * input and cache counts as well, which then win (a server tool that runs
 * more sampling rounds grows them: 3068 cache writes at the start, 3337 at
 * the end). A count the delta leaves out keeps its `message_start` value,
 * as Anthropic's own SDK does.
 *
 * The delta never repeats the `cache_creation` breakdown. When the start's
 * breakdown no longer sums to the final total, the 1-hour part keeps its
 * start count and the rest is taken as 5-minute writes, the default
 * lifetime; with no 1-hour writes (as in every recording) this is exact.
 *
 * @example
 * mergeAnthropicStreamUsage(
 *   { input_tokens: 12, output_tokens: 1 },
 *   { output_tokens: 30 },
 * ); // { input_tokens: 12, output_tokens: 30 }
 */
export function mergeAnthropicStreamUsage(
  start: unknown,
  delta: unknown,
): Record<string, unknown> {
  if (!isRecord(start)) {
    throw new UsageParseError('message_start usage is not an object');
  }
  if (!isRecord(delta)) {
    throw new UsageParseError('message_delta usage is not an object');
  }
  const merged: Record<string, unknown> = { ...start };
  for (const [field, value] of Object.entries(delta)) {
    if (value !== null && value !== undefined) merged[field] = value;
  }
  if (
    delta['cache_creation'] === undefined ||
    delta['cache_creation'] === null
  ) {
    const breakdown = rebalancedBreakdown(merged);
    if (breakdown !== undefined) merged['cache_creation'] = breakdown;
  }
  return merged;
}

/** The start's breakdown fitted to the final total; undefined if none. */
function rebalancedBreakdown(
  merged: Readonly<Record<string, unknown>>,
): Record<string, unknown> | undefined {
  const breakdown = optionalObject(merged, 'cache_creation');
  if (breakdown === undefined) return undefined;
  const total = readCount(merged, 'cache_creation_input_tokens') ?? 0;
  const fiveMinutes = readCount(breakdown, 'ephemeral_5m_input_tokens') ?? 0;
  const oneHour = readCount(breakdown, 'ephemeral_1h_input_tokens') ?? 0;
  if (fiveMinutes + oneHour === total) return { ...breakdown };

  const keptOneHour = Math.min(oneHour, total);
  return {
    ...breakdown,
    ephemeral_5m_input_tokens: total - keptOneHour,
    ephemeral_1h_input_tokens: keptOneHour,
  };
}

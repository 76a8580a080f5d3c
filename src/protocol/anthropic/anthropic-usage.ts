/**
 * Normalised usage in Anthropic's shape, for answers translated to an
 * Anthropic client: the inverse of `normalizeAnthropicUsage`, so a client
 * reading `input_tokens` sees only the uncached input, as from Anthropic.
 */
import type { NormalizedUsage } from '../../metering/usage.js';

/**
 * A `message_start` usage block before any count is known. The counts are
 * provisional zeros that `message_delta` overwrites; the `cache_creation`
 * breakdown is null, not zeros, since `message_delta` never carries it and
 * clients (`@anthropic-ai/sdk` among them) keep the start's breakdown as
 * final: zeros there would contradict the final cache-write total.
 */
export const ZERO_ANTHROPIC_USAGE: Readonly<Record<string, unknown>> =
  Object.freeze({
    ...anthropicUsage({
      inputTokens: 0,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      cacheWrite1hTokens: 0,
      outputTokens: 0,
      reasoningTokens: 0,
      units: {},
    }),
    cache_creation: null,
  });

/**
 * A response's (or `message_start`'s) usage block.
 *
 * @example
 * anthropicUsage({ inputTokens: 2, cacheReadTokens: 1590, outputTokens: 4, … })
 * // { input_tokens: 2, cache_read_input_tokens: 1590, output_tokens: 4, … }
 */
export function anthropicUsage(
  usage: NormalizedUsage,
): Record<string, unknown> {
  return {
    input_tokens: usage.inputTokens,
    cache_creation_input_tokens:
      usage.cacheWriteTokens + usage.cacheWrite1hTokens,
    cache_read_input_tokens: usage.cacheReadTokens,
    cache_creation: {
      ephemeral_5m_input_tokens: usage.cacheWriteTokens,
      ephemeral_1h_input_tokens: usage.cacheWrite1hTokens,
    },
    output_tokens: usage.outputTokens,
    ...serverToolUse(usage),
  };
}

/**
 * `message_delta`'s usage: the final cumulative counts, without the
 * `cache_creation` breakdown, as Anthropic sends it.
 */
export function anthropicDeltaUsage(
  usage: NormalizedUsage,
): Record<string, unknown> {
  return {
    input_tokens: usage.inputTokens,
    cache_creation_input_tokens:
      usage.cacheWriteTokens + usage.cacheWrite1hTokens,
    cache_read_input_tokens: usage.cacheReadTokens,
    output_tokens: usage.outputTokens,
    ...serverToolUse(usage),
  };
}

/** Server tool calls, where there were any, under Anthropic's names. */
function serverToolUse(usage: NormalizedUsage): Record<string, unknown> {
  const webSearches = usage.units['web_search_requests'];
  return webSearches === undefined
    ? {}
    : { server_tool_use: { web_search_requests: webSearches } };
}

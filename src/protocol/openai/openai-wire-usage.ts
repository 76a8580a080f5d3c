/**
 * Normalised usage written back in OpenAI's shapes, for answers translated
 * from another upstream.
 *
 * OpenAI counts every input token in one total, cached or not, so the
 * total is the sum of all input classes and the cache classes reappear as
 * details inside it. Reading the block back with the OpenAI normalisers
 * gives the same classes, except that one-hour and default cache writes
 * merge into `cache_write_tokens`, as OpenAI has one cache lifetime.
 */
import {
  totalInputTokens,
  type NormalizedUsage,
} from '../../metering/usage.js';

/** Audio moves back inside the totals, where OpenAI counts it. */
function audio(usage: NormalizedUsage) {
  return {
    input: usage.units['audioInputTokens'] ?? 0,
    output: usage.units['audioOutputTokens'] ?? 0,
  };
}

/** A Chat Completions `usage` block. */
export function toOpenAIChatUsage(usage: NormalizedUsage) {
  const { input: audioIn, output: audioOut } = audio(usage);
  const prompt = totalInputTokens(usage) + audioIn;
  const completion = usage.outputTokens + audioOut;
  const cacheWrite = usage.cacheWriteTokens + usage.cacheWrite1hTokens;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: {
      cached_tokens: usage.cacheReadTokens,
      ...(cacheWrite > 0 && { cache_write_tokens: cacheWrite }),
      audio_tokens: audioIn,
    },
    completion_tokens_details: {
      reasoning_tokens: usage.reasoningTokens,
      audio_tokens: audioOut,
    },
  };
}

/** A Responses API `usage` block. */
export function toOpenAIResponsesUsage(usage: NormalizedUsage) {
  const input = totalInputTokens(usage);
  const cacheWrite = usage.cacheWriteTokens + usage.cacheWrite1hTokens;
  return {
    input_tokens: input,
    input_tokens_details: {
      cached_tokens: usage.cacheReadTokens,
      ...(cacheWrite > 0 && { cache_write_tokens: cacheWrite }),
    },
    output_tokens: usage.outputTokens,
    output_tokens_details: { reasoning_tokens: usage.reasoningTokens },
    total_tokens: input + usage.outputTokens,
  };
}

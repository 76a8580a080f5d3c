/**
 * OpenAI Chat Completions usage → normalised usage.
 *
 * OpenAI counts cached tokens *inside* `prompt_tokens`: a prompt of 4020
 * tokens with `cached_tokens: 4012` is 8 uncached tokens plus 4012 cache
 * reads. Newer responses also report `cache_write_tokens`, again inside
 * `prompt_tokens`. Audio tokens are inside the prompt and completion counts
 * too and are priced apart, so they move to named units. Reasoning tokens
 * stay inside the output count, which is how OpenAI bills them.
 *
 * The same block shape is used by Azure OpenAI and by OpenAI-compatible
 * servers (vLLM, llama.cpp, Ollama), which simply omit the details.
 *
 * @see https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage
 */
import {
  isRecord,
  readCount,
  UsageParseError,
  type NormalizedUsage,
} from '../../metering/usage.js';

export function normalizeOpenAIChatUsage(raw: unknown): NormalizedUsage {
  if (!isRecord(raw)) {
    throw new UsageParseError('usage is not an object');
  }
  const prompt = readCount(raw, 'prompt_tokens');
  const completion = readCount(raw, 'completion_tokens');
  if (prompt === undefined || completion === undefined) {
    throw new UsageParseError('usage lacks prompt_tokens or completion_tokens');
  }

  const promptDetails = details(raw, 'prompt_tokens_details');
  const completionDetails = details(raw, 'completion_tokens_details');
  const cacheRead = readCount(promptDetails, 'cached_tokens') ?? 0;
  const cacheWrite = readCount(promptDetails, 'cache_write_tokens') ?? 0;
  const audioIn = readCount(promptDetails, 'audio_tokens') ?? 0;
  const audioOut = readCount(completionDetails, 'audio_tokens') ?? 0;
  const reasoning = readCount(completionDetails, 'reasoning_tokens') ?? 0;

  const uncached = prompt - cacheRead - cacheWrite - audioIn;
  if (uncached < 0) {
    throw new UsageParseError(
      `prompt_tokens ${prompt} is less than its cached, cache-write and ` +
        `audio parts (${cacheRead} + ${cacheWrite} + ${audioIn})`,
    );
  }
  const output = completion - audioOut;
  if (output < 0 || reasoning > output) {
    throw new UsageParseError(
      `completion_tokens ${completion} is less than its audio and ` +
        `reasoning parts (${audioOut}, ${reasoning})`,
    );
  }

  const units: Record<string, number> = {};
  if (audioIn > 0) units['audioInputTokens'] = audioIn;
  if (audioOut > 0) units['audioOutputTokens'] = audioOut;

  return {
    inputTokens: uncached,
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    cacheWrite1hTokens: 0,
    outputTokens: output,
    reasoningTokens: reasoning,
    units,
  };
}

function details(
  raw: Readonly<Record<string, unknown>>,
  field: string,
): Readonly<Record<string, unknown>> {
  const value = raw[field];
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) {
    throw new UsageParseError(`usage field ${field} is not an object`);
  }
  return value;
}

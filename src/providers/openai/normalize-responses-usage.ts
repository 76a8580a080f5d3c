/**
 * OpenAI Responses API usage → normalised usage.
 *
 * Like Chat Completions, and unlike Anthropic, the Responses API counts
 * cached tokens *inside* `input_tokens`: 4020 input tokens with
 * `input_tokens_details.cached_tokens: 4012` are 8 uncached tokens plus
 * 4012 cache reads. Newer responses also report `cache_write_tokens`,
 * again inside `input_tokens`. Reasoning tokens stay inside
 * `output_tokens`, which is how OpenAI bills them.
 *
 * Server-side tools are billed apart from tokens and reported beside the
 * usage block, in the response's `tool_usage`; given that block too, the
 * web searches and image-generation tokens become named units.
 *
 * @see https://platform.openai.com/docs/api-reference/responses/object#responses/object-usage
 */
import {
  isRecord,
  readCount,
  UsageParseError,
  type NormalizedUsage,
} from '../../metering/usage.js';

export function normalizeOpenAIResponsesUsage(
  raw: unknown,
  toolUsage?: unknown,
): NormalizedUsage {
  if (!isRecord(raw)) {
    throw new UsageParseError('usage is not an object');
  }
  const input = readCount(raw, 'input_tokens');
  const output = readCount(raw, 'output_tokens');
  if (input === undefined || output === undefined) {
    throw new UsageParseError('usage lacks input_tokens or output_tokens');
  }

  const inputDetails = details(raw, 'input_tokens_details');
  const outputDetails = details(raw, 'output_tokens_details');
  const cacheRead = readCount(inputDetails, 'cached_tokens') ?? 0;
  const cacheWrite = readCount(inputDetails, 'cache_write_tokens') ?? 0;
  const reasoning = readCount(outputDetails, 'reasoning_tokens') ?? 0;

  const uncached = input - cacheRead - cacheWrite;
  if (uncached < 0) {
    throw new UsageParseError(
      `input_tokens ${input} is less than its cached and cache-write ` +
        `parts (${cacheRead} + ${cacheWrite})`,
    );
  }
  if (reasoning > output) {
    throw new UsageParseError(
      `output_tokens ${output} is less than its reasoning part (${reasoning})`,
    );
  }

  return {
    inputTokens: uncached,
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    cacheWrite1hTokens: 0,
    outputTokens: output,
    reasoningTokens: reasoning,
    units: toolUnits(toolUsage),
  };
}

/**
 * `tool_usage`: `web_search.num_requests`, and the image generation
 * tool's own input and output tokens, priced apart from the model's.
 */
function toolUnits(toolUsage: unknown): Record<string, number> {
  if (toolUsage === undefined || toolUsage === null) return {};
  if (!isRecord(toolUsage)) {
    throw new UsageParseError('tool_usage is not an object');
  }
  const units: Record<string, number> = {};
  const add = (name: string, count: number | undefined) => {
    if (count !== undefined && count > 0) units[name] = count;
  };
  const webSearch = details(toolUsage, 'web_search');
  add('webSearchCalls', readCount(webSearch, 'num_requests'));
  const imageGen = details(toolUsage, 'image_gen');
  add('imageGenerationInputTokens', readCount(imageGen, 'input_tokens'));
  add('imageGenerationOutputTokens', readCount(imageGen, 'output_tokens'));
  return units;
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

/**
 * OpenAI (and Azure OpenAI) embeddings usage → normalised usage.
 *
 * An embedding reads input and writes no tokens: `prompt_tokens` is all
 * input, and `total_tokens` must equal it. Embeddings have no prompt
 * cache, so every token is uncached input.
 *
 * @see https://platform.openai.com/docs/api-reference/embeddings/object
 */
import {
  EMPTY_USAGE,
  isRecord,
  readCount,
  UsageParseError,
  type NormalizedUsage,
} from '../../metering/usage.js';

export function normalizeOpenAIEmbeddingsUsage(raw: unknown): NormalizedUsage {
  if (!isRecord(raw)) {
    throw new UsageParseError('usage is not an object');
  }
  const prompt = readCount(raw, 'prompt_tokens');
  if (prompt === undefined) {
    throw new UsageParseError('usage lacks prompt_tokens');
  }
  const total = readCount(raw, 'total_tokens');
  if (total !== undefined && total !== prompt) {
    throw new UsageParseError(
      `total_tokens ${total} differs from prompt_tokens ${prompt}; an ` +
        'embedding has no output tokens',
    );
  }
  return { ...EMPTY_USAGE, inputTokens: prompt };
}

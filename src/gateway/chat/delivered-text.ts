/**
 * The text a stream has delivered so far, kept only to estimate output
 * tokens if the stream ends before the provider's final usage arrives.
 */
import {
  estimateChatInputTokens,
  estimateTokens,
} from '../../metering/estimate-tokens.js';
import { hiddenInput } from '../../metering/hidden-input.js';
import type { NormalizedUsage } from '../../metering/usage.js';

export class DeliveredText {
  #text = '';

  /** Adds the text of one Chat Completions chunk's choices. */
  addChunk(chunk: Record<string, unknown>): void {
    const choices = chunk['choices'];
    if (!Array.isArray(choices)) return;
    for (const choice of choices) {
      const delta = (choice as { delta?: unknown } | null)?.delta;
      if (typeof delta !== 'object' || delta === null) continue;
      const { content, refusal, reasoning_content, tool_calls } =
        delta as Record<string, unknown>;
      for (const text of [content, refusal, reasoning_content]) {
        if (typeof text === 'string') this.#text += text;
      }
      if (Array.isArray(tool_calls)) {
        for (const call of tool_calls) {
          const fn = (call as { function?: Record<string, unknown> } | null)
            ?.function;
          if (typeof fn?.['name'] === 'string') this.#text += fn['name'];
          if (typeof fn?.['arguments'] === 'string')
            this.#text += fn['arguments'];
        }
      }
    }
  }

  get text(): string {
    return this.#text;
  }
}

/**
 * Usage estimated from the request and what was delivered, for a response
 * whose provider usage never came. Input is capped at the request's proven
 * upper bound; a request that made the upstream read input its body does
 * not carry is settled at that bound (estimate-usage.ts says why).
 */
export async function estimateChatUsage(
  body: Readonly<Record<string, unknown>>,
  deliveredText: string,
  inputBound: number,
): Promise<NormalizedUsage> {
  const hidden = hiddenInput('openai-chat', body);
  const input =
    hidden.unseen !== null
      ? inputBound
      : await estimateChatInputTokens(body, hidden.toolTokens);
  return {
    inputTokens: Math.min(input, inputBound),
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    outputTokens: await estimateTokens(deliveredText),
    reasoningTokens: 0,
    units: {},
  };
}

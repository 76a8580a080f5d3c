/**
 * The token counts the simulated upstream reports, and the rules behind
 * them.
 *
 * Tests of metering need counts they can predict without a tokenizer, so a
 * caller can dictate every count through request metadata, and the
 * fallbacks are simple enough to recompute by hand:
 *
 * - `prompt_tokens`: `metadata.tollgate_sim_prompt_tokens`, else one token
 *   per 4 UTF-8 bytes of message text, rounded up.
 * - `completion_tokens`, per choice: `metadata.tollgate_sim_completion_tokens`,
 *   else `min(max_completion_tokens ?? max_tokens ?? 16, 16)`.
 * - `metadata.tollgate_sim_cached_tokens` sits inside `prompt_tokens` and
 *   `metadata.tollgate_sim_reasoning_tokens` inside the per-choice
 *   completion, as with OpenAI, so neither may exceed its total.
 *
 * Metadata values are strings because OpenAI's metadata only holds strings.
 */
import type { ChatRequest } from './parse-chat-request.js';
import { WireError } from './wire-error.js';

/** Completion length when neither metadata nor a token limit says. */
const DEFAULT_COMPLETION_TOKENS = 16;

/** Far above any real context window; keeps a typo from eating memory. */
const MAX_SIMULATED_TOKENS = 10_000_000;

export const SIM_METADATA_KEYS = {
  promptTokens: 'tollgate_sim_prompt_tokens',
  completionTokens: 'tollgate_sim_completion_tokens',
  cachedTokens: 'tollgate_sim_cached_tokens',
  reasoningTokens: 'tollgate_sim_reasoning_tokens',
} as const;

export interface SimulatedUsage {
  /** Cached tokens included. */
  readonly promptTokens: number;
  readonly cachedTokens: number;
  /** Per choice, reasoning included. */
  readonly completionTokens: number;
  /** Per choice, the part of `completionTokens` spent on reasoning. */
  readonly reasoningTokens: number;
}

/** Throws a `WireError` (400) on metadata that is not a usable count. */
export function simulatedUsage(request: ChatRequest): SimulatedUsage {
  const { metadata } = request;
  const promptTokens =
    metadataCount(metadata, SIM_METADATA_KEYS.promptTokens) ??
    Math.ceil(messageTextBytes(request) / 4);
  const completionTokens =
    metadataCount(metadata, SIM_METADATA_KEYS.completionTokens) ??
    Math.min(
      request.maxTokens ?? DEFAULT_COMPLETION_TOKENS,
      DEFAULT_COMPLETION_TOKENS,
    );
  const cachedTokens =
    metadataCount(metadata, SIM_METADATA_KEYS.cachedTokens) ?? 0;
  const reasoningTokens =
    metadataCount(metadata, SIM_METADATA_KEYS.reasoningTokens) ?? 0;

  if (cachedTokens > promptTokens) {
    throw exceeds(SIM_METADATA_KEYS.cachedTokens, cachedTokens, promptTokens);
  }
  if (reasoningTokens > completionTokens) {
    throw exceeds(
      SIM_METADATA_KEYS.reasoningTokens,
      reasoningTokens,
      completionTokens,
    );
  }

  return { promptTokens, cachedTokens, completionTokens, reasoningTokens };
}

/** Bytes of every text the messages carry: plain or in `text` parts. */
function messageTextBytes(request: ChatRequest): number {
  let bytes = 0;
  for (const { content } of request.messages) {
    if (typeof content === 'string') {
      bytes += Buffer.byteLength(content, 'utf8');
    } else if (Array.isArray(content)) {
      for (const part of content as unknown[]) {
        const text = (part as { text?: unknown } | null)?.text;
        if (typeof text === 'string') bytes += Buffer.byteLength(text, 'utf8');
      }
    }
  }
  return bytes;
}

function metadataCount(
  metadata: Readonly<Record<string, string>>,
  key: string,
): number | undefined {
  const value = metadata[key];
  if (value === undefined) return undefined;

  if (!/^\d{1,9}$/.test(value) || Number(value) > MAX_SIMULATED_TOKENS) {
    throw new WireError(
      400,
      `Invalid 'metadata.${key}': expected a string of digits up to ` +
        `${MAX_SIMULATED_TOKENS}, but got '${value}'.`,
      { param: `metadata.${key}`, code: 'invalid_value' },
    );
  }
  return Number(value);
}

function exceeds(key: string, part: number, total: number): WireError {
  return new WireError(
    400,
    `Invalid 'metadata.${key}': ${part} is more than the ${total} tokens ` +
      'it is part of.',
    { param: `metadata.${key}`, code: 'invalid_value' },
  );
}

/**
 * The `usage` object of a response with `n` choices, field for field as
 * OpenAI sends it; completion counts are per choice, so they scale by `n`.
 */
export function toWireUsage(usage: SimulatedUsage, n: number) {
  const completionTokens = usage.completionTokens * n;
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: completionTokens,
    total_tokens: usage.promptTokens + completionTokens,
    prompt_tokens_details: {
      cached_tokens: usage.cachedTokens,
      audio_tokens: 0,
    },
    completion_tokens_details: {
      reasoning_tokens: usage.reasoningTokens * n,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

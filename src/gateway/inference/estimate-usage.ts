/**
 * Usage estimated for an answer whose provider usage never came (a stream
 * cut off, a malformed answer), marked estimated on the ledger.
 *
 * Input: what the provider already said about it, where it said anything
 * (Anthropic's `message_start` counts the prompt, cache classes and all);
 * else the canonical request's text, tool definitions included, through
 * the tokenizer, with an estimate per image and the allowance for the
 * prompt a provider adds around tools, capped at the request's proven
 * upper bound. A request that made the upstream read input its body does
 * not carry (`unseenInput`) is settled at that bound: nothing here can
 * say how much it read, and its provider bills all of it. Output: the
 * text delivered so far.
 */
import {
  ESTIMATED_IMAGE_TOKENS,
  estimateTokens,
  TOKENS_PER_MESSAGE,
  TOKENS_PER_REPLY,
} from '../../metering/estimate-tokens.js';
import { TOOL_PROMPT_ALLOWANCE } from '../../metering/hidden-input.js';
import type { AttemptUsage } from '../../metering/meter.js';
import type { NormalizedUsage } from '../../metering/usage.js';
import type {
  CanonicalChatRequest,
  ContentBlock,
} from '../../protocol/canonical.js';

export async function estimateRequestUsage(
  request: CanonicalChatRequest,
  early: NormalizedUsage | null,
  deliveredText: string,
  inputBound: number,
): Promise<NormalizedUsage> {
  const output = await estimateTokens(deliveredText);
  if (early) {
    return {
      ...early,
      outputTokens: Math.max(early.outputTokens, output),
    };
  }
  const text = [
    ...request.system,
    ...request.messages.map((message) =>
      message.content.map(blockText).join(''),
    ),
    ...request.tools.map((tool) => JSON.stringify(tool)),
    ...(request.unmodelledText === undefined ? [] : [request.unmodelledText]),
  ].join('\n');
  const input =
    request.unseenInput !== undefined
      ? inputBound
      : (await estimateTokens(text)) +
        request.messages.length * TOKENS_PER_MESSAGE +
        TOKENS_PER_REPLY +
        countImages(request) * ESTIMATED_IMAGE_TOKENS +
        (request.tools.length > 0 ? TOOL_PROMPT_ALLOWANCE : 0);
  return {
    inputTokens: Math.min(input, inputBound),
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    outputTokens: output,
    reasoningTokens: 0,
    units: {},
  };
}

/** Images in a request, tool results' included. */
export function countImages(request: CanonicalChatRequest): number {
  let images = 0;
  for (const message of request.messages) {
    for (const block of message.content) {
      if (block.type === 'image') images += 1;
      if (block.type === 'tool_result') {
        images += block.content.filter((part) => part.type === 'image').length;
      }
    }
  }
  return images;
}

function blockText(block: ContentBlock): string {
  switch (block.type) {
    case 'text':
    case 'thinking':
      return block.text;
    case 'tool_use':
      return block.name + JSON.stringify(block.input);
    case 'tool_result':
      return block.content
        .map((part) => (part.type === 'text' ? part.text : ''))
        .join('');
    case 'image':
      return '';
  }
}

/** The same, as the attempt usage a request is settled with. */
export async function estimatedAttempt(
  request: CanonicalChatRequest,
  early: NormalizedUsage | null,
  deliveredText: string,
  inputBound: number,
): Promise<Extract<AttemptUsage, { kind: 'estimated' }>> {
  return {
    kind: 'estimated',
    usage: await estimateRequestUsage(
      request,
      early,
      deliveredText,
      inputBound,
    ),
    raw: undefined,
  };
}

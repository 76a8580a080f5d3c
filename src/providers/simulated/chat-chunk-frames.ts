/**
 * The streaming answer as server-sent-event frames, `data: <chunk>\n\n`
 * each, matching the recorded streams of the shared wire fixtures
 * (`openai_chat_stream_*_include-usage.sse`):
 *
 * 1. per choice, a first chunk whose delta opens the message
 *    (`role`, an empty `content`, `refusal: null`);
 * 2. content chunks of `tokensPerChunk` tokens, the choices taking turns;
 * 3. per choice, an empty delta carrying the `finish_reason`;
 * 4. with `stream_options.include_usage`, a last chunk with `choices: []`
 *    and the usage. Every chunk before it then carries `"usage": null`;
 *    without the option no chunk has a usage field at all.
 *
 * The closing `data: [DONE]` is the writer's, not part of this sequence,
 * so a fault can cut the stream before it. Frames are produced lazily: a
 * long answer costs memory one chunk at a time.
 *
 * @see https://platform.openai.com/docs/api-reference/chat-streaming
 */
import type { CompletionPlan } from './plan-completion.js';
import { simText } from './sim-text.js';
import { toWireUsage } from './simulated-usage.js';

export interface ChunkFrameOptions {
  readonly tokensPerChunk: number;
  /** `stream_options.include_usage`. */
  readonly includeUsage: boolean;
  /** Leave out the usage chunk though it was asked for (a fault). */
  readonly withholdUsage: boolean;
  /** `stream_options.include_obfuscation`. */
  readonly includeObfuscation: boolean;
}

/**
 * OpenAI pads each chunk with random characters so that chunk sizes do not
 * reveal the tokens; a fixed cycle of lengths keeps ours reproducible.
 */
const PADDING = 'Tq7mXo2LrZ4vNc9kWb1';

export function* chatChunkFrames(
  plan: CompletionPlan,
  options: ChunkFrameOptions,
): Generator<string, void, undefined> {
  let sequence = 0;
  const frame = (choices: unknown[], usage: unknown = null): string => {
    sequence++;
    return `data: ${JSON.stringify({
      id: plan.id,
      object: 'chat.completion.chunk',
      created: plan.created,
      model: plan.model,
      service_tier: 'default',
      system_fingerprint: plan.systemFingerprint,
      choices,
      usage: options.includeUsage ? usage : undefined,
      obfuscation: options.includeObfuscation
        ? PADDING.slice(0, 3 + (sequence % 12))
        : undefined,
    })}\n\n`;
  };
  const choice = (index: number, delta: object, finish: string | null) => ({
    index,
    delta,
    logprobs: null,
    finish_reason: finish,
  });

  for (let index = 0; index < plan.choices; index++) {
    const opening = { role: 'assistant', content: '', refusal: null };
    yield frame([choice(index, opening, null)]);
  }

  const step = options.tokensPerChunk;
  for (let first = 0; first < plan.textTokens; first += step) {
    const count = Math.min(step, plan.textTokens - first);
    for (let index = 0; index < plan.choices; index++) {
      const content = simText(index, first, count);
      yield frame([choice(index, { content }, null)]);
    }
  }

  for (let index = 0; index < plan.choices; index++) {
    yield frame([choice(index, {}, plan.finishReason)]);
  }

  if (options.includeUsage && !options.withholdUsage) {
    yield frame([], toWireUsage(plan.usage, plan.choices));
  }
}

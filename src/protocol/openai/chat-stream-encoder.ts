/**
 * Canonical stream events → `chat.completion.chunk` server-sent events, as
 * api.openai.com streams them:
 *
 * 1. a first chunk opening the message (`role`, empty `content`);
 * 2. text deltas as `content`, tool calls as `tool_calls` deltas (index,
 *    id and name first, then fragments of the arguments);
 * 3. an empty delta with the `finish_reason`;
 * 4. with `include_usage` only, a chunk with `choices: []` and the usage,
 *    every earlier chunk then carrying `"usage": null`;
 * 5. `data: [DONE]`.
 *
 * Thinking has no place in a Chat Completions answer, so thinking blocks
 * are not written. That loses no billing data: thinking tokens are output
 * tokens, counted in `completion_tokens` and reported as
 * `completion_tokens_details.reasoning_tokens`, exactly as OpenAI's own
 * reasoning models report reasoning they do not show.
 *
 * An upstream's final usage can come before its stop (Anthropic's
 * `message_delta`) or after it (Bedrock's `metadata`); the encoder holds
 * whichever comes first so that the client always sees OpenAI's order,
 * and ends the stream once it has both.
 *
 * @see https://platform.openai.com/docs/api-reference/chat-streaming
 */
import type {
  CanonicalStreamEvent,
  ClientError,
  DecodedFrame,
  StreamEncoder,
} from '../canonical.js';
import { openAIErrorBody } from './openai-error.js';
import { chatFinishReason, chatCompletionId } from './chat-finish-reason.js';
import { toOpenAIChatUsage } from './openai-wire-usage.js';

const DONE = Buffer.from('data: [DONE]\n\n');
const EMPTY = Buffer.alloc(0);

export interface ChatStreamContext {
  readonly requestId: string;
  readonly model: string;
  readonly includeUsage: boolean;
  /** Seconds since the epoch, for `created`; defaults to now. */
  readonly created?: number;
}

export function createChatStreamEncoder(
  context: ChatStreamContext,
): StreamEncoder {
  const created = context.created ?? Math.floor(Date.now() / 1000);
  let id = chatCompletionId(null, context.requestId);
  /** Canonical block index → the tool call's index among tool calls. */
  const toolIndexes = new Map<number, number>();
  let finishFrame: string | null = null;
  let usageFrame: string | null = null;
  let ended = false;

  const chunk = (choices: unknown[], usage: unknown = null): string =>
    `data: ${JSON.stringify({
      id,
      object: 'chat.completion.chunk',
      created,
      model: context.model,
      choices,
      ...(context.includeUsage && { usage }),
    })}\n\n`;
  const delta = (fields: object, finishReason: string | null = null) =>
    chunk([
      { index: 0, delta: fields, logprobs: null, finish_reason: finishReason },
    ]);

  /** Writes the held tail once both the stop and the usage are known. */
  const tail = (): Buffer => {
    if (ended || finishFrame === null) return EMPTY;
    if (context.includeUsage && usageFrame === null) return EMPTY;
    ended = true;
    return Buffer.concat([Buffer.from(finishFrame + (usageFrame ?? '')), DONE]);
  };

  const encode = (event: CanonicalStreamEvent): Buffer => {
    switch (event.type) {
      case 'message_start':
        id = chatCompletionId(event.id, context.requestId);
        return Buffer.from(
          delta({ role: 'assistant', content: '', refusal: null }),
        );
      case 'block_start': {
        if (event.block.type !== 'tool_use') return EMPTY;
        const toolIndex = toolIndexes.size;
        toolIndexes.set(event.index, toolIndex);
        return Buffer.from(
          delta({
            tool_calls: [
              {
                index: toolIndex,
                id: event.block.id,
                type: 'function',
                function: { name: event.block.name, arguments: '' },
              },
            ],
          }),
        );
      }
      case 'text_delta':
        return event.text === ''
          ? EMPTY
          : Buffer.from(delta({ content: event.text }));
      case 'tool_input_delta': {
        const toolIndex = toolIndexes.get(event.index);
        if (toolIndex === undefined || event.json === '') return EMPTY;
        return Buffer.from(
          delta({
            tool_calls: [
              { index: toolIndex, function: { arguments: event.json } },
            ],
          }),
        );
      }
      case 'message_stop':
        finishFrame = delta({}, chatFinishReason(event.stopReason));
        return tail();
      case 'usage':
        if (!event.final) return EMPTY;
        if (context.includeUsage) {
          usageFrame = chunk([], toOpenAIChatUsage(event.usage));
        }
        return tail();
      case 'thinking_delta':
      case 'signature_delta':
      case 'block_stop':
        return EMPTY;
      case 'error':
        // The gateway maps the upstream's error to a ClientError and ends
        // the stream with encodeError.
        return EMPTY;
    }
  };

  return {
    contentType: 'text/event-stream; charset=utf-8',
    encode,
    passthrough: (frame: DecodedFrame) => rawBytes(frame),
    encodeError: (error: ClientError) =>
      Buffer.from(`data: ${JSON.stringify(openAIErrorBody(error))}\n\n`),
  };
}

/** A passed-through frame's bytes; an object frame as an SSE data line. */
export function rawBytes(frame: DecodedFrame): Buffer {
  return Buffer.isBuffer(frame.raw)
    ? frame.raw
    : Buffer.from(`data: ${JSON.stringify(frame.raw)}\n\n`);
}

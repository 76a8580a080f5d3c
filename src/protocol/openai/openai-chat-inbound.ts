/**
 * OpenAI Chat Completions as an inbound API: what the `openai` SDK's
 * `client.chat.completions.create` sends, and the answers it parses.
 *
 * @see https://platform.openai.com/docs/api-reference/chat
 */
import type {
  CanonicalChatResponse,
  ContentBlock,
  InboundProtocol,
} from '../canonical.js';
import { chatCompletionId, chatFinishReason } from './chat-finish-reason.js';
import { createChatStreamEncoder } from './chat-stream-encoder.js';
import { decodeOpenAIChatRequest } from './decode-chat-request.js';
import { encodeOpenAIError } from './openai-error.js';
import { toOpenAIChatUsage } from './openai-wire-usage.js';

export { openAIChatUntranslatable } from './openai-chat-untranslatable.js';

export const openAIChatInbound: InboundProtocol = {
  api: 'openai-chat',
  decodeRequest: decodeOpenAIChatRequest,
  encodeResponse: encodeChatCompletion,
  createStreamEncoder: (context) => createChatStreamEncoder(context),
  encodeError: encodeOpenAIError,
};

/**
 * A `chat.completion` object. Thinking blocks are not written: Chat
 * Completions has no field for reasoning text, and its tokens stay billed
 * and visible as `completion_tokens_details.reasoning_tokens` (see
 * chat-stream-encoder.ts).
 */
export function encodeChatCompletion(
  response: CanonicalChatResponse,
  context: { readonly requestId: string; readonly model: string },
) {
  const text = response.content
    .filter((block) => block.type === 'text')
    .map((block) => block.text)
    .join('');
  const toolCalls = response.content
    .filter(
      (block): block is Extract<ContentBlock, { type: 'tool_use' }> =>
        block.type === 'tool_use',
    )
    .map((block) => ({
      id: block.id,
      type: 'function',
      function: { name: block.name, arguments: JSON.stringify(block.input) },
    }));

  return {
    id: chatCompletionId(response.id, context.requestId),
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: context.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text === '' && toolCalls.length > 0 ? null : text,
          refusal: null,
          ...(toolCalls.length > 0 && { tool_calls: toolCalls }),
          annotations: [],
        },
        logprobs: null,
        finish_reason: chatFinishReason(response.stopReason),
      },
    ],
    usage: toOpenAIChatUsage(response.usage),
  };
}

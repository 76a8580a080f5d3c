/**
 * A non-streamed `chat.completion` → the canonical response.
 *
 * Only the first choice is read: a request with `n > 1` is never
 * translated (openAIChatUntranslatable), and the gateway passes the bytes
 * of a same-API answer through untouched. Azure's extra fields
 * (`content_filter_results`, `prompt_filter_results`) are ignored.
 *
 * @see https://platform.openai.com/docs/api-reference/chat/object
 */
import {
  UntranslatableError,
  UpstreamProtocolError,
  type CanonicalChatResponse,
  type ContentBlock,
} from '../canonical.js';
import { isRecord } from '../../metering/usage.js';
import { normalizeOpenAIChatUsage } from '../../providers/openai/normalize-chat-usage.js';
import { canonicalStopReason } from './chat-finish-reason.js';
import { parseArguments } from './request-fields.js';

export function decodeOpenAIChatResponse(body: unknown): CanonicalChatResponse {
  if (!isRecord(body)) {
    throw new UpstreamProtocolError('the chat completion is not an object');
  }
  const choices = body['choices'];
  const choice = Array.isArray(choices) ? (choices[0] as unknown) : undefined;
  if (!isRecord(choice) || !isRecord(choice['message'])) {
    throw new UpstreamProtocolError('the chat completion has no message');
  }
  const message = choice['message'];

  const content: ContentBlock[] = [];
  const reasoning = message['reasoning_content'];
  if (typeof reasoning === 'string' && reasoning !== '') {
    // OpenAI-compatible servers (vLLM, DeepSeek) return reasoning here.
    content.push({ type: 'thinking', text: reasoning, signature: null });
  }
  for (const field of ['content', 'refusal']) {
    const text = message[field];
    if (typeof text === 'string' && text !== '') {
      content.push({ type: 'text', text });
    }
  }
  const toolCalls = message['tool_calls'];
  if (Array.isArray(toolCalls)) {
    for (const call of toolCalls as unknown[]) content.push(toolUse(call));
  }

  const finishReason = choice['finish_reason'];
  return {
    id: typeof body['id'] === 'string' ? body['id'] : '',
    model: typeof body['model'] === 'string' ? body['model'] : '',
    content,
    stopReason: canonicalStopReason(
      typeof finishReason === 'string' ? finishReason : null,
    ),
    stopSequence: null,
    usage: normalizeOpenAIChatUsage(body['usage']),
    rawUsage: body['usage'],
  };
}

function toolUse(call: unknown): ContentBlock {
  const fn = isRecord(call) ? call['function'] : undefined;
  if (
    !isRecord(call) ||
    typeof call['id'] !== 'string' ||
    !isRecord(fn) ||
    typeof fn['name'] !== 'string' ||
    typeof fn['arguments'] !== 'string'
  ) {
    throw new UpstreamProtocolError(
      'a tool call lacks its id, function name or arguments',
    );
  }
  const input = parseArguments(fn['arguments']);
  if (input === null) {
    // Without strict mode a model can emit arguments that are not JSON;
    // other APIs carry tool input as a JSON object only.
    throw new UntranslatableError(
      `the upstream's arguments for tool call ${call['id']} are not a JSON ` +
        'object',
    );
  }
  return { type: 'tool_use', id: call['id'], name: fn['name'], input };
}

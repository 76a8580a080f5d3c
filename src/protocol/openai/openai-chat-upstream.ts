/**
 * OpenAI Chat Completions as an upstream API: OpenAI itself, Azure OpenAI
 * and OpenAI-compatible servers.
 *
 * @see https://platform.openai.com/docs/api-reference/chat
 */
import type { UpstreamProtocol } from '../canonical.js';
import { ChatStreamDecoder } from './chat-stream-decoder.js';
import { decodeOpenAIChatResponse } from './decode-chat-response.js';
import { encodeOpenAIChatRequest } from './encode-chat-request.js';
import { decodeOpenAIError } from './openai-error.js';

export const openAIChatUpstream: UpstreamProtocol = {
  api: 'openai-chat',
  encodeRequest: encodeOpenAIChatRequest,
  decodeResponse: decodeOpenAIChatResponse,
  createStreamDecoder: () => new ChatStreamDecoder(),
  decodeError: decodeOpenAIError,
};

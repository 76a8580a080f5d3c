/**
 * The OpenAI Responses API as an upstream API: OpenAI's `/v1/responses`
 * and Azure OpenAI's.
 *
 * @see https://platform.openai.com/docs/api-reference/responses
 */
import type { UpstreamProtocol } from '../canonical.js';
import { decodeOpenAIResponsesResponse } from './decode-responses-response.js';
import { encodeOpenAIResponsesRequest } from './encode-responses-request.js';
import { decodeOpenAIError } from './openai-error.js';
import { ResponsesStreamDecoder } from './responses-stream-decoder.js';

export const openAIResponsesUpstream: UpstreamProtocol = {
  api: 'openai-responses',
  encodeRequest: encodeOpenAIResponsesRequest,
  decodeResponse: decodeOpenAIResponsesResponse,
  createStreamDecoder: () => new ResponsesStreamDecoder(),
  decodeError: decodeOpenAIError,
};

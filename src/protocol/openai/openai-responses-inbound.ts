/**
 * The OpenAI Responses API as an inbound API: what the `openai` SDK's
 * `client.responses.create` and `client.responses.stream` send, and the
 * answers they parse.
 *
 * @see https://platform.openai.com/docs/api-reference/responses
 */
import type { CanonicalChatResponse, InboundProtocol } from '../canonical.js';
import { decodeOpenAIResponsesRequest } from './decode-responses-request.js';
import { encodeOpenAIError } from './openai-error.js';
import { toOpenAIResponsesUsage } from './openai-wire-usage.js';
import {
  outputItems,
  responseId,
  responseObject,
  responseStatus,
} from './responses-output.js';
import { createResponsesStreamEncoder } from './responses-stream-encoder.js';

export { openAIResponsesUntranslatable } from './openai-responses-untranslatable.js';

export const openAIResponsesInbound: InboundProtocol = {
  api: 'openai-responses',
  decodeRequest: decodeOpenAIResponsesRequest,
  encodeResponse: encodeResponse,
  createStreamEncoder: (context) => createResponsesStreamEncoder(context),
  encodeError: encodeOpenAIError,
};

/** A `response` object for a translated answer. */
export function encodeResponse(
  response: CanonicalChatResponse,
  context: { readonly requestId: string; readonly model: string },
) {
  const id = responseId(response.id, context.requestId);
  const { status, incomplete_details } = responseStatus(response.stopReason);
  return responseObject({
    id,
    createdAt: Math.floor(Date.now() / 1000),
    model: context.model,
    status,
    incompleteDetails: incomplete_details,
    output: outputItems(response.content, id),
    usage: toOpenAIResponsesUsage(response.usage),
  });
}

/**
 * Anthropic Messages as the API a client calls (`POST /v1/messages` with
 * `@anthropic-ai/sdk`): requests in, answers, streams and errors out in
 * Anthropic's exact shapes.
 *
 * `decodeRequest` returns only the canonical request. What that request
 * leaves out (`cache_control`, `top_k`, server tools, documents…) is listed
 * by `anthropicUntranslatable(body)`, or by `decodeAnthropicRequest`, which
 * returns both at once: a gateway forwarding the body to an Anthropic
 * upstream ignores the list, and one translating refuses the first entry.
 *
 * @example
 * const { request, untranslatable } = decodeAnthropicRequest(body, null);
 * if (translating && untranslatable[0]) throw untranslatable[0];
 *
 * @see https://docs.anthropic.com/en/api/messages
 */
import {
  UntranslatableError,
  type CanonicalChatResponse,
  type ClientError,
  type ContentBlock,
  type InboundProtocol,
} from '../canonical.js';
import { anthropicStopReason } from './anthropic-content.js';
import { anthropicErrorType } from './anthropic-errors.js';
import { AnthropicStreamEncoder } from './anthropic-stream-encoder.js';
import { anthropicUsage } from './anthropic-usage.js';
import { decodeAnthropicRequest } from './decode-anthropic-request.js';

export const anthropicInbound: InboundProtocol = {
  api: 'anthropic-messages',
  decodeRequest: (body, model) => decodeAnthropicRequest(body, model).request,
  encodeResponse: encodeAnthropicResponse,
  createStreamEncoder: (context) => new AnthropicStreamEncoder(context),
  encodeError: encodeAnthropicError,
};

/**
 * The parts of a valid Messages body that canonical form cannot carry,
 * each as the error to refuse a translation with.
 *
 * @throws InvalidRequestError for a body Anthropic would refuse.
 */
export function anthropicUntranslatable(
  body: unknown,
): readonly UntranslatableError[] {
  return decodeAnthropicRequest(body, null).untranslatable;
}

/** A canonical answer as an Anthropic `message`, named by the alias. */
export function encodeAnthropicResponse(
  response: CanonicalChatResponse,
  context: { readonly requestId: string; readonly model: string },
): Record<string, unknown> {
  return {
    // Bedrock gives its answers no id; a client still needs one.
    id: response.id || `msg_${context.requestId}`,
    type: 'message',
    role: 'assistant',
    model: context.model,
    content: response.content.map((block, i) => responseBlock(block, i)),
    stop_reason: anthropicStopReason(response.stopReason),
    stop_sequence: response.stopSequence,
    usage: anthropicUsage(response.usage),
  };
}

function responseBlock(
  block: ContentBlock,
  i: number,
): Record<string, unknown> {
  switch (block.type) {
    case 'text':
      return { type: 'text', text: block.text };
    case 'tool_use':
      return {
        type: 'tool_use',
        id: block.id,
        name: block.name,
        input: block.input,
      };
    case 'thinking':
      // Anthropic clients expect a string; thinking from another provider
      // has no signature to give, and cannot be sent back to Anthropic.
      return {
        type: 'thinking',
        thinking: block.text,
        signature: block.signature ?? '',
      };
    case 'image':
    case 'tool_result':
      throw new UntranslatableError(
        `content.${i}: an answer with a ${block.type} block cannot be ` +
          'expressed as an Anthropic message',
        `content.${i}`,
      );
  }
}

/**
 * An error in Anthropic's format. The `request-id` header is where
 * `@anthropic-ai/sdk` reads the id for its exceptions.
 */
export function encodeAnthropicError(error: ClientError): {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
} {
  return {
    status: error.status,
    headers: {
      'content-type': 'application/json',
      'request-id': error.requestId,
    },
    body: JSON.stringify({
      type: 'error',
      error: {
        type: anthropicErrorType(error.kind, error.status),
        message: error.message,
      },
      request_id: error.requestId,
    }),
  };
}

/**
 * Anthropic Messages as an upstream: canonical requests out, Anthropic
 * answers, streams and errors back in.
 *
 * @example
 * const body = anthropicUpstream.encodeRequest(request, 'claude-sonnet-4-5');
 * const decoder = anthropicUpstream.createStreamDecoder();
 * for await (const chunk of response.body) decoder.push(chunk);
 *
 * @see https://docs.anthropic.com/en/api/messages
 */
import {
  UntranslatableError,
  UpstreamProtocolError,
  type CanonicalChatRequest,
  type CanonicalChatResponse,
  type CanonicalMessage,
  type ContentBlock,
  type ToolChoice,
  type UpstreamErrorInfo,
  type UpstreamProtocol,
} from '../canonical.js';
import { isRecord } from '../../metering/usage.js';
import { normalizeAnthropicUsage } from '../../providers/anthropic/normalize-anthropic-usage.js';
import {
  canonicalStopReason,
  encodeAnthropicBlock,
  readAnthropicBlock,
} from './anthropic-content.js';
import { anthropicErrorKind } from './anthropic-errors.js';
import { AnthropicStreamDecoder } from './anthropic-stream-decoder.js';

/**
 * The `max_tokens` sent when the client set no output cap. Anthropic
 * requires one; this is a common cap that every current model accepts.
 */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

export const anthropicUpstream: UpstreamProtocol = {
  api: 'anthropic-messages',
  encodeRequest: encodeAnthropicRequest,
  decodeResponse(body) {
    const { response, untranslatable } = decodeAnthropicMessage(body);
    const [first] = untranslatable;
    if (first !== undefined) throw first;
    return response;
  },
  createStreamDecoder: () => new AnthropicStreamDecoder(),
  decodeError: decodeAnthropicError,
};

/** A canonical request as an Anthropic Messages body, for `upstreamModel`. */
export function encodeAnthropicRequest(
  request: CanonicalChatRequest,
  upstreamModel: string,
): Record<string, unknown> {
  const thinking = request.thinkingBudgetTokens;
  const body: Record<string, unknown> = {
    model: upstreamModel,
    max_tokens: request.maxOutputTokens ?? defaultMaxTokens(thinking),
    messages: request.messages.map((message, i) => encodeMessage(message, i)),
  };

  if (request.system.length === 1) body['system'] = request.system[0];
  if (request.system.length > 1) {
    body['system'] = request.system.map((text) => ({ type: 'text', text }));
  }
  if (request.tools.length > 0) {
    body['tools'] = request.tools.map((tool) => ({
      name: tool.name,
      ...(tool.description !== null && { description: tool.description }),
      input_schema: tool.inputSchema,
    }));
  }
  if (request.toolChoice !== null) {
    body['tool_choice'] = encodeToolChoice(request.toolChoice);
  }
  if (request.temperature !== null) body['temperature'] = request.temperature;
  if (request.topP !== null) body['top_p'] = request.topP;
  if (request.stopSequences.length > 0) {
    body['stop_sequences'] = request.stopSequences;
  }
  if (thinking !== null) {
    body['thinking'] = { type: 'enabled', budget_tokens: thinking };
  }
  body['stream'] = request.stream;
  if (request.endUser !== null) {
    body['metadata'] = { user_id: request.endUser };
  }
  return body;
}

/**
 * A message in Anthropic's shape. Anthropic refuses empty text blocks,
 * which other APIs produce (an OpenAI assistant turn with only tool
 * calls has `content: ""`); they carry nothing, so they are left out.
 */
function encodeMessage(
  message: CanonicalMessage,
  i: number,
): Record<string, unknown> {
  const content = message.content
    .map((block, j) => ({ block, j }))
    .filter(({ block }) => !(block.type === 'text' && block.text === ''))
    .map(({ block, j }) =>
      encodeAnthropicBlock(block, `messages.${i}.content.${j}`),
    );
  if (content.length === 0) {
    throw new UntranslatableError(
      `messages.${i}: Anthropic refuses a message with no content`,
      `messages.${i}.content`,
    );
  }
  return { role: message.role, content };
}

/**
 * The default cap, raised above a thinking budget that would not fit under
 * it: Anthropic wants `max_tokens` greater than `budget_tokens`.
 */
export function defaultMaxTokens(thinkingBudget: number | null): number {
  if (
    thinkingBudget === null ||
    thinkingBudget < ANTHROPIC_DEFAULT_MAX_TOKENS
  ) {
    return ANTHROPIC_DEFAULT_MAX_TOKENS;
  }
  return thinkingBudget + ANTHROPIC_DEFAULT_MAX_TOKENS;
}

function encodeToolChoice(choice: ToolChoice): Record<string, unknown> {
  return choice.type === 'tool'
    ? { type: 'tool', name: choice.name }
    : { type: choice.type };
}

/**
 * A non-streamed Anthropic answer in canonical form, with the parts it
 * could not carry: content blocks a server tool produced, redacted
 * thinking. A gateway passing the answer through to an Anthropic client
 * can ignore them; one translating it must refuse.
 */
export function decodeAnthropicMessage(body: unknown): {
  readonly response: CanonicalChatResponse;
  readonly untranslatable: readonly UntranslatableError[];
} {
  if (!isRecord(body) || body['type'] !== 'message') {
    throw new UpstreamProtocolError('the answer is not an Anthropic message');
  }
  const content = body['content'];
  if (!Array.isArray(content)) {
    throw new UpstreamProtocolError('the message has no content list');
  }

  const untranslatable: UntranslatableError[] = [];
  const blocks: ContentBlock[] = [];
  content.forEach((value: unknown, i) => {
    const block = readAnthropicBlock(value, `content.${i}`, {
      fail(_code, message) {
        throw new UpstreamProtocolError(`the message's ${message}`);
      },
      untranslatable(error) {
        untranslatable.push(error);
      },
    });
    if (block !== undefined) blocks.push(block);
  });

  const stopSequence = body['stop_sequence'] ?? null;
  return {
    response: {
      id: requiredString(body, 'id'),
      model: requiredString(body, 'model'),
      content: blocks,
      stopReason: canonicalStopReason(body['stop_reason']),
      stopSequence: typeof stopSequence === 'string' ? stopSequence : null,
      usage: normalizeAnthropicUsage(body['usage']),
      rawUsage: body['usage'],
    },
    untranslatable,
  };
}

function requiredString(
  body: Readonly<Record<string, unknown>>,
  field: string,
): string {
  const value = body[field];
  if (typeof value !== 'string') {
    throw new UpstreamProtocolError(`the message's ${field} is not a string`);
  }
  return value;
}

/**
 * An Anthropic error answer in neutral terms. The body is
 * `{"type":"error","error":{"type","message"}}`; a body in any other shape
 * (a proxy's HTML page) is judged by its status alone.
 */
export function decodeAnthropicError(
  status: number,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  body: unknown,
): UpstreamErrorInfo {
  const error =
    isRecord(body) && isRecord(body['error']) ? body['error'] : undefined;
  const type = error?.['type'];
  const message =
    typeof error?.['message'] === 'string'
      ? error['message']
      : `Anthropic answered ${status}`;
  const retryAfter = headers['retry-after'];
  return {
    kind: anthropicErrorKind(type, status, message),
    status,
    message,
    retryAfter:
      (Array.isArray(retryAfter) ? retryAfter[0] : retryAfter) ?? null,
    upstreamCode: typeof type === 'string' ? type : null,
  };
}

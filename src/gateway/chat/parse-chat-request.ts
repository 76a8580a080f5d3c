/**
 * Validates the fields of a Chat Completions request that the gateway
 * reads, and keeps the rest untouched to pass through (DESIGN.md, "The
 * request path", step 4). Error messages and codes follow OpenAI's, so
 * clients that handle OpenAI's errors handle these.
 *
 * @see https://platform.openai.com/docs/api-reference/chat/create
 */
import { readChatAdmissionFields } from '../../protocol/openai/chat-admission-fields.js';
import { describeType } from '../../protocol/openai/request-fields.js';
import { ApiError, fromInvalidRequest } from '../api-error.js';

export interface ChatRequest {
  /** The parsed body, to forward with the upstream model swapped in. */
  readonly body: Readonly<Record<string, unknown>>;
  readonly model: string;
  readonly messages: readonly unknown[];
  readonly stream: boolean;
  /** The client asked for the usage chunk (`stream_options.include_usage`). */
  readonly includeUsage: boolean;
  /**
   * The most one choice may generate: the larger of `max_completion_tokens`
   * and `max_tokens`, since the body is forwarded with both.
   */
  readonly maxOutputTokens: number | undefined;
  readonly choices: number;
  /**
   * The end user as the body names it: `user`, else OpenAI's newer
   * `safety_identifier`, else `metadata.user_id` (Anthropic's convention).
   */
  readonly user: string | undefined;
}

const ROLES = new Set([
  'system',
  'developer',
  'user',
  'assistant',
  'tool',
  'function',
]);

export function parseChatRequest(body: unknown): ChatRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError(
      'invalid_type',
      'The request body must be a JSON object.',
    );
  }
  const fields = body as Record<string, unknown>;

  const model = required(fields, 'model');
  if (typeof model !== 'string' || model === '') {
    throw wrongType('model', 'a non-empty string', model);
  }

  const messages = required(fields, 'messages');
  if (!Array.isArray(messages)) {
    throw wrongType('messages', 'an array', messages);
  }
  if (messages.length === 0) {
    throw new ApiError(
      'invalid_value',
      "Invalid 'messages': empty array. Expected an array with minimum " +
        'length 1.',
      { param: 'messages' },
    );
  }
  messages.forEach((message: unknown, i) => {
    const param = `messages[${i}]`;
    if (
      typeof message !== 'object' ||
      message === null ||
      Array.isArray(message)
    ) {
      throw wrongType(param, 'an object', message);
    }
    const { role } = message as { role?: unknown };
    if (role === undefined) throw missing(`${param}.role`);
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new ApiError(
        'invalid_value',
        `Invalid value for '${param}.role': ${JSON.stringify(role)}. ` +
          `Supported values are: ${[...ROLES].map((r) => `'${r}'`).join(', ')}.`,
        { param: `${param}.role` },
      );
    }
  });

  // Shared with the translated path (decode-chat-request.ts), so a
  // request is admitted alike whichever API its deployments speak.
  const admission = fromInvalidRequest(() => readChatAdmissionFields(fields));
  return {
    body: fields,
    model,
    messages,
    stream: admission.stream,
    includeUsage: admission.includeUsage,
    // The body is forwarded as it is, so either of its caps may be honoured.
    maxOutputTokens: admission.outputBound ?? undefined,
    choices: admission.choices,
    user: admission.endUser ?? undefined,
  };
}

/**
 * The body sent upstream: the caller's, with the deployment's model and,
 * for streams, `include_usage` on, since metering needs the final usage
 * chunk whether or not the client asked for it.
 */
export function upstreamChatBody(
  chat: ChatRequest,
  upstreamModel: string,
): string {
  const body: Record<string, unknown> = { ...chat.body, model: upstreamModel };
  if (chat.stream) {
    const options = chat.body['stream_options'];
    body['stream_options'] = {
      ...(isObject(options) ? options : {}),
      include_usage: true,
    };
  }
  try {
    return JSON.stringify(body);
  } catch (error) {
    // JSON nested deeper than the serialiser's stack allows.
    if (!(error instanceof RangeError)) throw error;
    throw new ApiError(
      'invalid_value',
      'The request body is nested too deeply to forward.',
      { cause: error },
    );
  }
}

function required(fields: Record<string, unknown>, name: string): unknown {
  const value = fields[name];
  if (value === undefined || value === null) throw missing(name);
  return value;
}

function missing(param: string): ApiError {
  return new ApiError(
    'missing_required_parameter',
    `Missing required parameter: '${param}'.`,
    { param },
  );
}

function wrongType(param: string, expected: string, value: unknown): ApiError {
  return new ApiError(
    'invalid_type',
    `Invalid type for '${param}': expected ${expected}, but got ` +
      `${describeType(value)} instead.`,
    { param },
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

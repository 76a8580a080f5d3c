/**
 * Validates the fields of a Chat Completions request that the gateway
 * reads, and keeps the rest untouched to pass through (DESIGN.md, "The
 * request path", step 4). Error messages and codes follow OpenAI's, so
 * clients that handle OpenAI's errors handle these.
 *
 * @see https://platform.openai.com/docs/api-reference/chat/create
 */
import { ApiError } from '../api-error.js';

export interface ChatRequest {
  /** The parsed body, to forward with the upstream model swapped in. */
  readonly body: Readonly<Record<string, unknown>>;
  readonly model: string;
  readonly messages: readonly unknown[];
  readonly stream: boolean;
  /** The client asked for the usage chunk (`stream_options.include_usage`). */
  readonly includeUsage: boolean;
  /** `max_completion_tokens`, else `max_tokens`, per choice. */
  readonly maxOutputTokens: number | undefined;
  readonly choices: number;
  /**
   * The end user as the body names it: `user`, else OpenAI's newer
   * `safety_identifier`, else `metadata.user_id` (Anthropic's convention).
   */
  readonly user: string | undefined;
  /** Image parts across all messages (for the input bound). */
  readonly images: number;
}

const ROLES = new Set([
  'system',
  'developer',
  'user',
  'assistant',
  'tool',
  'function',
]);

/**
 * Above any model's output limit: a larger cap is a mistake, and the
 * worst case reserved from it would be meaningless.
 */
export const MAX_OUTPUT_TOKENS = 10_000_000;

/** OpenAI's own limit on `n`. */
const MAX_CHOICES = 128;

/** OpenAI caps `user` at 256 characters; so do we (it is stored). */
const MAX_USER_LENGTH = 256;

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
  let images = 0;
  messages.forEach((message: unknown, i) => {
    const param = `messages[${i}]`;
    if (
      typeof message !== 'object' ||
      message === null ||
      Array.isArray(message)
    ) {
      throw wrongType(param, 'an object', message);
    }
    const { role, content } = message as { role?: unknown; content?: unknown };
    if (role === undefined) throw missing(`${param}.role`);
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new ApiError(
        'invalid_value',
        `Invalid value for '${param}.role': ${JSON.stringify(role)}. ` +
          `Supported values are: ${[...ROLES].map((r) => `'${r}'`).join(', ')}.`,
        { param: `${param}.role` },
      );
    }
    if (Array.isArray(content)) images += countImages(content);
  });

  const stream = optional(fields, 'stream', 'a boolean', isBoolean) ?? false;
  const streamOptions = optional(
    fields,
    'stream_options',
    'an object',
    isObject,
  );
  if (streamOptions !== undefined && !stream) {
    throw new ApiError(
      'invalid_value',
      "The 'stream_options' parameter is only allowed when 'stream' is " +
        'enabled.',
      { param: 'stream_options' },
    );
  }
  const includeUsage = streamOptions?.['include_usage'];
  if (
    includeUsage !== undefined &&
    includeUsage !== null &&
    !isBoolean(includeUsage)
  ) {
    throw wrongType('stream_options.include_usage', 'a boolean', includeUsage);
  }

  const maxCompletion = positiveInteger(
    fields,
    'max_completion_tokens',
    MAX_OUTPUT_TOKENS,
  );
  const maxTokens = positiveInteger(fields, 'max_tokens', MAX_OUTPUT_TOKENS);
  const choices = positiveInteger(fields, 'n', MAX_CHOICES) ?? 1;
  const metadata = optional(fields, 'metadata', 'an object', isObject);
  const user =
    boundedString(fields, 'user') ??
    boundedString(fields, 'safety_identifier') ??
    (metadata && boundedString(metadata, 'user_id', 'metadata.user_id'));

  return {
    body: fields,
    model,
    messages,
    stream,
    includeUsage: includeUsage === true,
    // Given both, an upstream may honour either: the bound takes the larger.
    maxOutputTokens:
      maxCompletion !== undefined && maxTokens !== undefined
        ? Math.max(maxCompletion, maxTokens)
        : (maxCompletion ?? maxTokens),
    choices,
    user,
    images,
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

/** An optional string field, refused above OpenAI's 256-character cap. */
function boundedString(
  fields: Record<string, unknown>,
  name: string,
  param = name,
): string | undefined {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (!isString(value)) throw wrongType(param, 'a string', value);
  if (value.length > MAX_USER_LENGTH) {
    throw new ApiError(
      'invalid_value',
      `Invalid '${param}': string too long. Expected a string with maximum ` +
        `length ${MAX_USER_LENGTH}, but got a string with length ` +
        `${value.length} instead.`,
      { param },
    );
  }
  return value;
}

function countImages(parts: readonly unknown[]): number {
  let images = 0;
  for (const part of parts) {
    if (
      isObject(part) &&
      (part['type'] === 'image_url' || part['type'] === 'input_image')
    ) {
      images++;
    }
  }
  return images;
}

function required(fields: Record<string, unknown>, name: string): unknown {
  const value = fields[name];
  if (value === undefined || value === null) throw missing(name);
  return value;
}

function optional<T>(
  fields: Record<string, unknown>,
  name: string,
  expected: string,
  check: (value: unknown) => value is T,
): T | undefined {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (!check(value)) throw wrongType(name, expected, value);
  return value;
}

function positiveInteger(
  fields: Record<string, unknown>,
  name: string,
  maximum: number,
): number | undefined {
  const value = optional(fields, name, 'an integer', isNumber);
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value)) throw wrongType(name, 'an integer', value);
  if (value < 1) {
    throw new ApiError(
      'invalid_value',
      `Invalid '${name}': integer below minimum value. Expected a value ` +
        `>= 1, but got ${value} instead.`,
      { param: name },
    );
  }
  if (value > maximum) {
    throw new ApiError(
      'invalid_value',
      `Invalid '${name}': integer above maximum value. Expected a value ` +
        `<= ${maximum}, but got ${value} instead.`,
      { param: name },
    );
  }
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

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') {
    return Number.isInteger(value) ? 'an integer' : 'a decimal';
  }
  const type = typeof value;
  return `a${type === 'object' || type === 'undefined' ? 'n' : ''} ${type}`;
}

function isBoolean(value: unknown): value is boolean {
  return typeof value === 'boolean';
}

function isString(value: unknown): value is string {
  return typeof value === 'string';
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validation of a Chat Completions request body, strict in the places where
 * api.openai.com is strict.
 *
 * The simulated upstream exists to catch the gateway forwarding something
 * the real API would refuse (a `stream_options` on a non-streaming call, a
 * `max_tokens` of 0, a message without a role), so each check answers the
 * 400 OpenAI answers, with its `param` and `code`. Fields the simulation
 * does not use (tools, temperature…) pass through unchecked: a missed
 * refusal there is cheaper than refusing something the real API accepts.
 *
 * @see https://platform.openai.com/docs/api-reference/chat/create
 */
import { WireError } from './wire-error.js';

/** The roles api.openai.com accepts, listed as its refusal lists them. */
const ROLES = ['system', 'assistant', 'user', 'function', 'tool', 'developer'];
const ROLE_LIST =
  "'system', 'assistant', 'user', 'function', 'tool', and 'developer'";

/** OpenAI's ceiling on `n`. */
const MAX_CHOICES = 128;

/** OpenAI's bounds on `metadata`, which gateways like to add to. */
const MAX_METADATA_KEYS = 16;
const MAX_METADATA_KEY_LENGTH = 64;
const MAX_METADATA_VALUE_LENGTH = 512;

export interface ChatMessage {
  readonly role: string;
  readonly content: unknown;
}

/** The parts of a request the simulation acts on. */
export interface ChatRequest {
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  readonly stream: boolean;
  /** `stream_options.include_usage`. */
  readonly includeUsage: boolean;
  /** `stream_options.include_obfuscation`, which OpenAI defaults to on. */
  readonly includeObfuscation: boolean;
  /** `max_completion_tokens`, else the older `max_tokens`. */
  readonly maxTokens: number | undefined;
  readonly n: number;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Throws a `WireError` (status 400) on what OpenAI would refuse. */
export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) {
    throw invalidType('body', 'an object', body);
  }

  const model = body['model'];
  if (model === undefined || model === null) {
    // OpenAI's own wording; it names no param for this one.
    throw new WireError(400, 'you must provide a model parameter');
  }
  if (typeof model !== 'string') throw invalidType('model', 'a string', model);

  const stream = optionalBoolean(body, 'stream') ?? false;
  const streamOptions = parseStreamOptions(body['stream_options'], stream);

  return {
    model,
    messages: parseMessages(body['messages']),
    stream,
    includeUsage: streamOptions.includeUsage,
    includeObfuscation: streamOptions.includeObfuscation,
    maxTokens:
      optionalCount(body, 'max_completion_tokens') ??
      optionalCount(body, 'max_tokens'),
    n: optionalCount(body, 'n', MAX_CHOICES) ?? 1,
    metadata: parseMetadata(body['metadata']),
  };
}

function parseMessages(value: unknown): ChatMessage[] {
  if (value === undefined || value === null) {
    throw new WireError(400, "Missing required parameter: 'messages'.", {
      param: 'messages',
      code: 'missing_required_parameter',
    });
  }
  if (!Array.isArray(value)) {
    throw invalidType('messages', 'an array of objects', value);
  }
  if (value.length === 0) {
    throw new WireError(
      400,
      "Invalid 'messages': empty array. Expected an array with minimum " +
        'length 1, but got an empty array instead.',
      { param: 'messages', code: 'empty_array' },
    );
  }

  return value.map((message: unknown, index) => {
    const param = `messages[${index}]`;
    if (!isObject(message)) throw invalidType(param, 'an object', message);

    const role = message['role'];
    if (role === undefined || role === null) {
      throw new WireError(400, `Missing required parameter: '${param}.role'.`, {
        param: `${param}.role`,
        code: 'missing_required_parameter',
      });
    }
    if (typeof role !== 'string') {
      throw invalidType(`${param}.role`, 'a string', role);
    }
    if (!ROLES.includes(role)) {
      throw new WireError(
        400,
        `Invalid value: '${role}'. Supported values are: ${ROLE_LIST}.`,
        { param: `${param}.role`, code: 'invalid_value' },
      );
    }
    return { role, content: message['content'] };
  });
}

function parseStreamOptions(
  value: unknown,
  stream: boolean,
): { includeUsage: boolean; includeObfuscation: boolean } {
  if (value === undefined || value === null) {
    return { includeUsage: false, includeObfuscation: true };
  }
  if (!stream) {
    throw new WireError(
      400,
      "The 'stream_options' parameter is only allowed when 'stream' is " +
        'enabled.',
      { param: 'stream_options' },
    );
  }
  if (!isObject(value)) {
    throw invalidType('stream_options', 'an object', value);
  }
  return {
    includeUsage:
      optionalBoolean(value, 'include_usage', 'stream_options.') ?? false,
    includeObfuscation:
      optionalBoolean(value, 'include_obfuscation', 'stream_options.') ?? true,
  };
}

/**
 * OpenAI metadata: at most 16 string keys to string values, which is why
 * the simulation's counts arrive as strings of digits.
 */
function parseMetadata(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw invalidType('metadata', 'an object', value);

  const entries = Object.entries(value);
  if (entries.length > MAX_METADATA_KEYS) {
    throw new WireError(
      400,
      "Invalid 'metadata': too many properties. Expected an object with at " +
        `most ${MAX_METADATA_KEYS} properties, but got an object with ` +
        `${entries.length} properties instead.`,
      { param: 'metadata', code: 'object_above_max_properties' },
    );
  }
  for (const [key, entry] of entries) {
    const param = `metadata.${key}`;
    if (typeof entry !== 'string') throw invalidType(param, 'a string', entry);
    if (key.length > MAX_METADATA_KEY_LENGTH) {
      throw tooLong(param, 'key', MAX_METADATA_KEY_LENGTH, key.length);
    }
    if (entry.length > MAX_METADATA_VALUE_LENGTH) {
      throw tooLong(param, 'string', MAX_METADATA_VALUE_LENGTH, entry.length);
    }
  }
  return value as Record<string, string>;
}

function optionalBoolean(
  object: Readonly<Record<string, unknown>>,
  field: string,
  prefix = '',
): boolean | undefined {
  const value = object[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') {
    throw invalidType(prefix + field, 'a boolean', value);
  }
  return value;
}

/** A positive integer no larger than `max`; null reads as absent. */
function optionalCount(
  object: Readonly<Record<string, unknown>>,
  field: string,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const value = object[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw invalidType(field, 'an integer', value);
  }
  if (value < 1) {
    throw new WireError(
      400,
      `Invalid '${field}': integer below minimum value. Expected a value ` +
        `>= 1, but got ${value} instead.`,
      { param: field, code: 'integer_below_min_value' },
    );
  }
  if (value > max) {
    throw new WireError(
      400,
      `Invalid '${field}': integer above maximum value. Expected a value ` +
        `<= ${max}, but got ${value} instead.`,
      { param: field, code: 'integer_above_max_value' },
    );
  }
  return value;
}

function tooLong(param: string, what: string, max: number, got: number) {
  return new WireError(
    400,
    `Invalid '${param}': ${what} too long. Expected a ${what} with maximum ` +
      `length ${max}, but got a ${what} with length ${got} instead.`,
    { param, code: 'string_above_max_length' },
  );
}

function invalidType(param: string, expected: string, got: unknown) {
  return new WireError(
    400,
    `Invalid type for '${param}': expected ${expected}, but got ` +
      `${describeJson(got)} instead.`,
    { param, code: 'invalid_type' },
  );
}

/** A JSON value's type in the words OpenAI's messages use. */
function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') {
    return Number.isInteger(value) ? 'an integer' : 'a decimal';
  }
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

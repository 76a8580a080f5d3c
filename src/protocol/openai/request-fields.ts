/**
 * Field readers for OpenAI-family request bodies. Each refuses a value of
 * the wrong type with InvalidRequestError, naming the field as OpenAI's
 * own 400s do (`messages[2].content[0].type`), and reads null as absent,
 * which is what the API does.
 */
import { InvalidRequestError } from '../canonical.js';
import { isRecord } from '../../metering/usage.js';

export type Fields = Readonly<Record<string, unknown>>;

export function invalidType(
  param: string,
  expected: string,
  value: unknown,
): InvalidRequestError {
  return new InvalidRequestError(
    'invalid_type',
    `Invalid type for '${param}': expected ${expected}, but got ` +
      `${describeType(value)} instead.`,
    param,
  );
}

/** A value's type as OpenAI's messages word it: "an integer", "a decimal". */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') {
    return Number.isInteger(value) ? 'an integer' : 'a decimal';
  }
  const type = typeof value;
  return `a${type === 'object' || type === 'undefined' ? 'n' : ''} ${type}`;
}

export function missing(param: string): InvalidRequestError {
  return new InvalidRequestError(
    'missing_required_parameter',
    `Missing required parameter: '${param}'.`,
    param,
  );
}

export function invalidValue(
  param: string,
  message: string,
): InvalidRequestError {
  return new InvalidRequestError('invalid_value', message, param);
}

export function requireObject(value: unknown, param: string): Fields {
  if (!isRecord(value)) throw invalidType(param, 'an object', value);
  return value;
}

export function optionalString(
  fields: Fields,
  field: string,
  prefix = '',
): string | null {
  const value = fields[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') {
    throw invalidType(prefix + field, 'a string', value);
  }
  return value;
}

export function requireString(
  fields: Fields,
  field: string,
  prefix = '',
): string {
  const value = optionalString(fields, field, prefix);
  if (value === null) throw missing(prefix + field);
  return value;
}

export function optionalBoolean(
  fields: Fields,
  field: string,
  prefix = '',
): boolean | null {
  const value = fields[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'boolean') {
    throw invalidType(prefix + field, 'a boolean', value);
  }
  return value;
}

export function optionalNumber(fields: Fields, field: string): number | null {
  const value = fields[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw invalidType(field, 'a number', value);
  }
  return value;
}

/**
 * A count (a token cap, `n`): an integer of at least 1, as OpenAI
 * requires, and at most `maximum`.
 */
export function optionalCount(
  fields: Fields,
  field: string,
  maximum = Number.MAX_SAFE_INTEGER,
): number | null {
  const value = fields[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw invalidType(field, 'an integer', value);
  }
  if (value < 1) {
    throw invalidValue(
      field,
      `Invalid '${field}': integer below minimum value. Expected a value ` +
        `>= 1, but got ${value} instead.`,
    );
  }
  if (value > maximum) {
    throw invalidValue(
      field,
      `Invalid '${field}': integer above maximum value. Expected a value ` +
        `<= ${maximum}, but got ${value} instead.`,
    );
  }
  return value;
}

/** OpenAI caps `user` at 256 characters; so do we (it is stored). */
const MAX_USER_LENGTH = 256;

/**
 * The end user an OpenAI body (Chat Completions or Responses) names:
 * `user`, else OpenAI's newer `safety_identifier`, else `metadata.user_id`
 * (Anthropic's convention). The `x-tollgate-end-user` header, which the
 * gateway reads, comes before all of them.
 */
export function openAIEndUser(fields: Fields): string | null {
  const value = fields['metadata'];
  const metadata =
    value === undefined || value === null
      ? null
      : requireObject(value, 'metadata');
  return (
    boundedString(fields, 'user') ??
    boundedString(fields, 'safety_identifier') ??
    (metadata && boundedString(metadata, 'user_id', 'metadata.'))
  );
}

/** An optional string, refused above OpenAI's 256-character cap. */
function boundedString(
  fields: Fields,
  field: string,
  prefix = '',
): string | null {
  const value = optionalString(fields, field, prefix);
  const param = prefix + field;
  if (value !== null && value.length > MAX_USER_LENGTH) {
    throw invalidValue(
      param,
      `Invalid '${param}': string too long. Expected a string with maximum ` +
        `length ${MAX_USER_LENGTH}, but got a string with length ` +
        `${value.length} instead.`,
    );
  }
  return value;
}

/** `stop`: a string, an array of strings, or absent. */
export function stopSequences(fields: Fields, field: string): string[] {
  const value = fields[field];
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return [value];
  if (
    Array.isArray(value) &&
    value.every((entry): entry is string => typeof entry === 'string')
  ) {
    return value;
  }
  throw invalidType(field, 'a string or an array of strings', value);
}

/** A JSON object from a tool call's `arguments` string, or null. */
export function parseArguments(text: string): Record<string, unknown> | null {
  try {
    const parsed = JSON.parse(text === '' ? '{}' : text) as unknown;
    return isRecord(parsed) ? parsed : null;
  } catch {
    return null;
  }
}

/**
 * An image reference: a `data:` URL becomes base64 data with its media
 * type; any other URL stays a URL for the upstream to fetch.
 */
export function imageSource(url: string):
  | {
      readonly kind: 'base64';
      readonly mediaType: string;
      readonly data: string;
    }
  | { readonly kind: 'url'; readonly url: string } {
  const match = /^data:([^;,]+)(?:;[^,]*)?;base64,(.*)$/s.exec(url);
  if (match?.[1] !== undefined && match[2] !== undefined) {
    return { kind: 'base64', mediaType: match[1], data: match[2] };
  }
  return { kind: 'url', url };
}

/** The `data:` URL OpenAI takes for inline image bytes. */
export function dataUrl(mediaType: string, data: string): string {
  return `data:${mediaType};base64,${data}`;
}

/**
 * Errors in OpenAI's shape, both ways: an upstream's error answer (Chat
 * Completions, Responses, Azure OpenAI) read into API-neutral terms, and a
 * gateway error written as the body the `openai` SDKs parse into typed
 * exceptions.
 *
 * The body is `{"error":{"message","type","param","code"}}` for every
 * OpenAI-family API; Azure adds `innererror` for content filtering.
 *
 * @see https://platform.openai.com/docs/guides/error-codes
 */
import type {
  ClientError,
  ErrorKind,
  UpstreamErrorInfo,
} from '../canonical.js';
import { isRecord } from '../../metering/usage.js';

type Headers = Readonly<Record<string, string | string[] | undefined>>;

/** The HTTP status an error kind implies when no status came with it. */
export const KIND_STATUS: Readonly<Record<ErrorKind, number>> = {
  invalid_request: 400,
  authentication: 401,
  permission: 403,
  not_found: 404,
  timeout: 408,
  request_too_large: 413,
  context_length: 400,
  content_filter: 400,
  rate_limit: 429,
  server: 500,
  overloaded: 503,
};

/**
 * OpenAI's `error.type` for each kind. OpenAI types a rate limit by what
 * ran out (`requests` or `tokens`); the gateway's own limits count
 * requests first, so `requests` it is.
 */
const KIND_TYPE: Readonly<Record<ErrorKind, string>> = {
  invalid_request: 'invalid_request_error',
  not_found: 'invalid_request_error',
  context_length: 'invalid_request_error',
  content_filter: 'invalid_request_error',
  request_too_large: 'invalid_request_error',
  authentication: 'authentication_error',
  permission: 'permission_error',
  rate_limit: 'requests',
  timeout: 'server_error',
  server: 'server_error',
  overloaded: 'server_error',
};

/** Codes OpenAI and Azure use for a prompt that does not fit the window. */
const CONTEXT_LENGTH_CODES = new Set([
  'context_length_exceeded',
  'string_above_max_length',
]);

/** Codes for a prompt or answer refused by content filtering. */
const CONTENT_FILTER_CODES = new Set([
  'content_filter',
  'content_policy_violation',
  'ResponsibleAIPolicyViolation',
]);

/**
 * Reads an OpenAI-family error answer. `body` is the parsed JSON, or null
 * (or text) when the upstream sent something else, as proxies in front of
 * it do.
 */
export function decodeOpenAIError(
  status: number,
  headers: Headers,
  body: unknown,
): UpstreamErrorInfo {
  const error = errorObject(body);
  const code = stringField(error, 'code');
  const type = stringField(error, 'type');
  const innerCode = stringField(
    isRecord(error?.['innererror']) ? error['innererror'] : undefined,
    'code',
  );
  const message =
    stringField(error, 'message') ??
    (typeof body === 'string' && body !== '' ? body.slice(0, 500) : null) ??
    `the upstream answered with status ${status}`;

  return {
    kind: errorKind(status, [code, type, innerCode]),
    status,
    message,
    retryAfter: retryAfter(headers),
    upstreamCode: code ?? type ?? null,
  };
}

/**
 * The kind of an error object met inside a stream, where no HTTP status
 * comes with it: judged by its code and type alone.
 */
export function streamErrorInfo(error: unknown): UpstreamErrorInfo {
  const object = isRecord(error) ? error : undefined;
  const code = stringField(object, 'code');
  const type = stringField(object, 'type');
  const kind = errorKind(null, [code, type]);
  return {
    kind,
    status: KIND_STATUS[kind],
    message: stringField(object, 'message') ?? 'the upstream failed mid-stream',
    retryAfter: null,
    upstreamCode: code ?? type ?? null,
  };
}

/**
 * The status code decides first; codes refine a 400 (or a stream error,
 * which has no status) into the context-length and content-filter cases
 * a client handles apart.
 */
function errorKind(
  status: number | null,
  codes: readonly (string | undefined)[],
): ErrorKind {
  const has = (set: ReadonlySet<string>) =>
    codes.some((code) => code !== undefined && set.has(code));
  if (has(CONTEXT_LENGTH_CODES)) return 'context_length';
  if (has(CONTENT_FILTER_CODES)) return 'content_filter';

  switch (status) {
    case null:
      return kindOfCode(codes);
    case 401:
      return 'authentication';
    case 403:
      return 'permission';
    case 404:
      return 'not_found';
    case 408:
      return 'timeout';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit';
    case 503:
    case 529:
      // OpenAI answers 503 "The engine is currently overloaded" or "Slow
      // down": capacity, worth a try elsewhere, not a fault in the request.
      return 'overloaded';
    case 504:
      return 'timeout';
  }
  if (status >= 500) return 'server';
  return 'invalid_request';
}

/** A stream error's kind from its code or type alone. */
function kindOfCode(codes: readonly (string | undefined)[]): ErrorKind {
  for (const code of codes) {
    if (code === undefined) continue;
    switch (code) {
      case 'rate_limit_exceeded':
      case 'insufficient_quota':
      case 'requests':
      case 'tokens':
        return 'rate_limit';
      case 'server_error':
      case 'api_error':
        return 'server';
      case 'server_is_overloaded':
      case 'slow_down':
        return 'overloaded';
      case 'invalid_api_key':
      case 'authentication_error':
        return 'authentication';
      case 'invalid_request_error':
      case 'invalid_prompt':
        return 'invalid_request';
    }
  }
  return 'server';
}

function errorObject(
  body: unknown,
): Readonly<Record<string, unknown>> | undefined {
  if (!isRecord(body)) return undefined;
  const error = body['error'];
  return isRecord(error) ? error : undefined;
}

function stringField(
  object: Readonly<Record<string, unknown>> | undefined,
  field: string,
): string | undefined {
  const value = object?.[field];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * `retry-after` as sent (seconds or an HTTP date); else OpenAI's
 * `retry-after-ms`, rounded up to whole seconds so no client retries early.
 */
function retryAfter(headers: Headers): string | null {
  const seconds = header(headers, 'retry-after');
  if (seconds !== undefined) return seconds;
  const ms = Number(header(headers, 'retry-after-ms'));
  if (Number.isFinite(ms) && ms >= 0) return String(Math.ceil(ms / 1000));
  return null;
}

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined || first === '' ? undefined : first;
}

/**
 * A gateway error as OpenAI's error body. `code` is Tollgate's stable
 * code and `request_id` rides along for support, as in the gateway's own
 * `toOpenAIErrorBody` (src/gateway/api-error.ts), which takes an ApiError
 * rather than the protocol-neutral ClientError used here.
 */
export function openAIErrorBody(error: ClientError) {
  return {
    error: {
      message: error.message,
      type: KIND_TYPE[error.kind],
      param: error.param,
      code: error.code,
      request_id: error.requestId,
    },
  };
}

/** A non-streamed error answer for any OpenAI-family inbound API. */
export function encodeOpenAIError(error: ClientError) {
  return {
    status: error.status,
    headers: {
      'content-type': 'application/json',
      'x-request-id': error.requestId,
    },
    body: JSON.stringify(openAIErrorBody(error)),
  };
}

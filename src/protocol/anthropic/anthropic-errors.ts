/**
 * Anthropic's error types, both ways: what an upstream's
 * `{"type":"error","error":{"type","message"}}` means in API-neutral terms,
 * and which type and status an Anthropic client should see for ours.
 *
 * @see https://docs.anthropic.com/en/api/errors
 */
import type { ErrorKind, UpstreamErrorInfo } from '../canonical.js';

export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'billing_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'timeout_error'
  | 'overloaded_error';

/** Each error type with the status Anthropic sends it with. */
export const ANTHROPIC_ERROR_STATUS: Readonly<
  Record<AnthropicErrorType, number>
> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

const KIND_OF_TYPE: Readonly<Record<AnthropicErrorType, ErrorKind>> = {
  invalid_request_error: 'invalid_request',
  authentication_error: 'authentication',
  // The account cannot pay: like a permission, retrying will not help.
  billing_error: 'permission',
  permission_error: 'permission',
  not_found_error: 'not_found',
  request_too_large: 'request_too_large',
  rate_limit_error: 'rate_limit',
  api_error: 'server',
  timeout_error: 'timeout',
  overloaded_error: 'overloaded',
};

/** Anthropic's words for a prompt that does not fit the context window. */
const CONTEXT_LENGTH_MESSAGE =
  /prompt is too long|exceed(?:s|ed)? (?:the )?context (?:limit|window)/i;

export function isAnthropicErrorType(
  value: unknown,
): value is AnthropicErrorType {
  return typeof value === 'string' && Object.hasOwn(KIND_OF_TYPE, value);
}

/**
 * The neutral kind of an Anthropic error, from its type when known, else
 * from the status. A 400 about the prompt's length is `context_length`.
 */
export function anthropicErrorKind(
  type: unknown,
  status: number,
  message: string,
): ErrorKind {
  const kind = isAnthropicErrorType(type)
    ? KIND_OF_TYPE[type]
    : kindOfStatus(status);
  if (kind === 'invalid_request' && CONTEXT_LENGTH_MESSAGE.test(message)) {
    return 'context_length';
  }
  return kind;
}

function kindOfStatus(status: number): ErrorKind {
  switch (status) {
    case 401:
      return 'authentication';
    case 402:
    case 403:
      return 'permission';
    case 404:
      return 'not_found';
    case 408:
    case 504:
      return 'timeout';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit';
    case 503:
    case 529:
      return 'overloaded';
  }
  return status >= 500 ? 'server' : 'invalid_request';
}

/**
 * The error type an Anthropic client should see for an error with this
 * status. The status decides, because it is the gateway's verdict (a
 * rejected upstream key is a 502 `api_error` to the client, not its own
 * authentication failure); the kind only refines a 5xx into `overloaded`.
 */
export function anthropicErrorType(
  kind: ErrorKind,
  status: number,
): AnthropicErrorType {
  if (status >= 500 && kind === 'overloaded') return 'overloaded_error';
  if (status >= 500 && kind === 'timeout') return 'timeout_error';
  switch (status) {
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 504:
      return 'timeout_error';
    case 529:
      return 'overloaded_error';
  }
  return status >= 500 ? 'api_error' : 'invalid_request_error';
}

/**
 * An error Anthropic reported inside a stream (an `error` event), which
 * carries a type but no status: it gets the status its type implies.
 */
export function anthropicStreamErrorInfo(
  error: Readonly<Record<string, unknown>>,
): UpstreamErrorInfo {
  const type = error['type'];
  const message =
    typeof error['message'] === 'string' ? error['message'] : 'unknown error';
  const status = isAnthropicErrorType(type)
    ? ANTHROPIC_ERROR_STATUS[type]
    : 500;
  return {
    kind: anthropicErrorKind(type, status, message),
    status,
    message,
    retryAfter: null,
    upstreamCode: typeof type === 'string' ? type : null,
  };
}

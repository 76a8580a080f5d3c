/**
 * The gateway's error model: a closed set of codes, each with one HTTP
 * status. Every refusal a client can see is an `ApiError`; formatters turn
 * it into the wire shape of the API that was called (OpenAI's today).
 *
 * Codes are stable: clients and dashboards match on them, so a code is
 * never renamed or reused for another meaning.
 */

import {
  InvalidRequestError,
  type ClientError,
  type ErrorKind,
} from '../protocol/canonical.js';

export const ERROR_STATUS = {
  invalid_json: 400,
  missing_required_parameter: 400,
  invalid_type: 400,
  invalid_value: 400,
  /** Refused by the HTTP parser, before any route (see gateway.ts). */
  invalid_request: 400,
  request_timeout: 408,
  unsupported_media_type: 415,
  request_too_large: 413,
  missing_api_key: 401,
  invalid_api_key: 401,
  admin_required: 401,
  model_not_allowed: 403,
  model_not_found: 404,
  not_found: 404,
  conflict: 409,
  /** A config reload was refused; the config in force stays. */
  invalid_config: 400,
  /** The request is valid but cannot be expressed in the upstream's API. */
  untranslatable: 400,
  /** The upstream refused the request as invalid (a translated request). */
  upstream_rejected: 400,
  context_length_exceeded: 400,
  content_filtered: 400,
  /** The upstream is rate limiting the gateway; `Retry-After` says when. */
  rate_limited: 429,
  upstream_overloaded: 503,
  /** A gateway limit on requests, tokens or concurrency (admission). */
  rate_limit_exceeded: 429,
  /** A money budget would be exceeded by the request's worst case. */
  budget_exceeded: 402,
  /** A budget applies and the model has no price to check it with. */
  budget_unpriced: 403,
  /** The counter store is down and the limit fails closed. */
  limits_unavailable: 503,
  /**
   * The ledger cannot record the request before its upstream call, so it
   * is not made: nothing may be served that could go unrecorded.
   */
  ledger_unavailable: 503,
  upstream_error: 502,
  upstream_unavailable: 502,
  upstream_auth_failed: 502,
  upstream_timeout: 504,
  /**
   * Every deployment of the model is passed by for now: its circuit
   * breaker is open, or the routing deadline passed before any answer.
   */
  no_deployment_available: 503,
  shutting_down: 503,
  internal_error: 500,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ApiErrorOptions {
  /** The request field at fault, as OpenAI's `param`. */
  readonly param?: string;
  readonly cause?: unknown;
  /** Sent as `Retry-After`: seconds, or an HTTP date. */
  readonly retryAfter?: string;
  /** Other headers the refusal carries (rate-limit standing). */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * The `type` of OpenAI's error body where it is not the status's own:
   * OpenAI's rate-limit errors say `requests` or `tokens`, its quota
   * errors `insufficient_quota`.
   */
  readonly openAIType?: string;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly param: string | undefined;
  readonly retryAfter: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly openAIType: string | undefined;

  constructor(code: ErrorCode, message: string, options: ApiErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.param = options.param;
    this.retryAfter = options.retryAfter;
    this.headers = options.headers ?? {};
    this.openAIType = options.openAIType;
  }
}

/**
 * Runs a protocol reader, turning its refusal of the request
 * (InvalidRequestError) into the ApiError the client is answered with.
 */
export function fromInvalidRequest<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    throw new ApiError(error.code, error.message, {
      ...(error.param !== null && { param: error.param }),
      cause: error,
    });
  }
}

/**
 * The API-neutral kind of each code, which an inbound protocol turns into
 * its own error type (Anthropic's `rate_limit_error`, Bedrock's
 * `ThrottlingException`).
 */
export const ERROR_KIND: Readonly<Record<ErrorCode, ErrorKind>> = {
  invalid_json: 'invalid_request',
  missing_required_parameter: 'invalid_request',
  invalid_type: 'invalid_request',
  invalid_value: 'invalid_request',
  invalid_request: 'invalid_request',
  request_timeout: 'timeout',
  unsupported_media_type: 'invalid_request',
  request_too_large: 'request_too_large',
  missing_api_key: 'authentication',
  invalid_api_key: 'authentication',
  admin_required: 'authentication',
  model_not_allowed: 'permission',
  model_not_found: 'not_found',
  not_found: 'not_found',
  conflict: 'invalid_request',
  invalid_config: 'invalid_request',
  untranslatable: 'invalid_request',
  upstream_rejected: 'invalid_request',
  context_length_exceeded: 'context_length',
  content_filtered: 'content_filter',
  rate_limited: 'rate_limit',
  upstream_overloaded: 'overloaded',
  rate_limit_exceeded: 'rate_limit',
  // Not a rate limit: clients must not retry it as one (the AWS SDK
  // retries a ThrottlingException; AccessDenied it does not).
  budget_exceeded: 'permission',
  budget_unpriced: 'permission',
  limits_unavailable: 'overloaded',
  ledger_unavailable: 'overloaded',
  upstream_error: 'server',
  upstream_unavailable: 'server',
  upstream_auth_failed: 'server',
  upstream_timeout: 'timeout',
  no_deployment_available: 'overloaded',
  shutting_down: 'overloaded',
  internal_error: 'server',
};

/** An ApiError as the protocol-neutral error an inbound API formats. */
export function toClientError(error: ApiError, requestId: string): ClientError {
  return {
    status: error.status,
    code: error.code,
    kind: ERROR_KIND[error.code],
    message: error.message,
    param: error.param ?? null,
    requestId,
  };
}

/** OpenAI's `error.type` for each class of failure. */
function openAIErrorType(error: ApiError): string {
  if (error.openAIType !== undefined) return error.openAIType;
  if (error.status === 401) return 'authentication_error';
  if (error.status === 403) return 'permission_error';
  if (error.status >= 500) return 'api_error';
  return 'invalid_request_error';
}

/**
 * The body OpenAI's API returns for an error, which the `openai` SDKs parse
 * into typed exceptions. The request id rides along for support tickets;
 * it is also in the `x-request-id` header, where the SDKs read it.
 */
export function toOpenAIErrorBody(error: ApiError, requestId: string) {
  return {
    error: {
      message: error.message,
      type: openAIErrorType(error),
      param: error.param ?? null,
      code: error.code,
      request_id: requestId,
    },
  };
}

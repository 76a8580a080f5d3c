/**
 * The gateway's error model: a closed set of codes, each with one HTTP
 * status. Every refusal a client can see is an `ApiError`; formatters turn
 * it into the wire shape of the API that was called (OpenAI's today).
 *
 * Codes are stable: clients and dashboards match on them, so a code is
 * never renamed or reused for another meaning.
 */

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
  upstream_error: 502,
  upstream_unavailable: 502,
  upstream_auth_failed: 502,
  upstream_timeout: 504,
  shutting_down: 503,
  internal_error: 500,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ApiErrorOptions {
  /** The request field at fault, as OpenAI's `param`. */
  readonly param?: string;
  readonly cause?: unknown;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly param: string | undefined;

  constructor(code: ErrorCode, message: string, options: ApiErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.param = options.param;
  }
}

/** OpenAI's `error.type` for each class of failure. */
function openAIErrorType(error: ApiError): string {
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

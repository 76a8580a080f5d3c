/**
 * Bedrock's error types, both ways: what an upstream error means, and how
 * to tell a Bedrock client about one so its SDK raises the right class.
 *
 * Bedrock names an error in the `x-amzn-errortype` header
 * (`ThrottlingException:http://internal.amazon.com/coral/…`), or in a
 * `__type` body field, and puts a `message` in the JSON body. Inside a
 * ConverseStream the same errors arrive as exception frames named by their
 * union member (`throttlingException`).
 *
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_Errors
 */
import { isRecord } from '../../metering/usage.js';
import type {
  ClientError,
  ErrorKind,
  UpstreamErrorInfo,
} from '../canonical.js';

interface ErrorTypeInfo {
  readonly kind: ErrorKind;
  /** The status Bedrock answers this type with. */
  readonly status: number;
}

/** Every type Bedrock runtime is known to answer, with what it means. */
const ERROR_TYPES: Readonly<Record<string, ErrorTypeInfo>> = {
  ThrottlingException: { kind: 'rate_limit', status: 429 },
  ServiceQuotaExceededException: { kind: 'rate_limit', status: 400 },
  ServiceUnavailableException: { kind: 'overloaded', status: 503 },
  ModelNotReadyException: { kind: 'overloaded', status: 429 },
  ValidationException: { kind: 'invalid_request', status: 400 },
  ConflictException: { kind: 'invalid_request', status: 400 },
  SerializationException: { kind: 'invalid_request', status: 400 },
  AccessDeniedException: { kind: 'permission', status: 403 },
  UnrecognizedClientException: { kind: 'authentication', status: 403 },
  InvalidSignatureException: { kind: 'authentication', status: 403 },
  IncompleteSignatureException: { kind: 'authentication', status: 403 },
  MissingAuthenticationTokenException: {
    kind: 'authentication',
    status: 403,
  },
  ExpiredTokenException: { kind: 'authentication', status: 403 },
  ResourceNotFoundException: { kind: 'not_found', status: 404 },
  ModelTimeoutException: { kind: 'timeout', status: 408 },
  InternalServerException: { kind: 'server', status: 500 },
  ModelErrorException: { kind: 'server', status: 424 },
  ModelStreamErrorException: { kind: 'server', status: 424 },
};

/** What each kind is called when the gateway answers a Bedrock client. */
const TYPE_OF_KIND: Readonly<Record<ErrorKind, string>> = {
  invalid_request: 'ValidationException',
  context_length: 'ValidationException',
  request_too_large: 'ValidationException',
  content_filter: 'ValidationException',
  authentication: 'UnrecognizedClientException',
  permission: 'AccessDeniedException',
  not_found: 'ResourceNotFoundException',
  rate_limit: 'ThrottlingException',
  overloaded: 'ServiceUnavailableException',
  server: 'InternalServerException',
  timeout: 'ModelTimeoutException',
};

/**
 * The exception members a ConverseStream may end with; any other kind is
 * told as the nearest of them.
 */
const STREAM_MEMBER_OF_KIND: Readonly<Record<ErrorKind, string>> = {
  invalid_request: 'validationException',
  context_length: 'validationException',
  request_too_large: 'validationException',
  content_filter: 'validationException',
  authentication: 'validationException',
  permission: 'validationException',
  not_found: 'validationException',
  rate_limit: 'throttlingException',
  overloaded: 'serviceUnavailableException',
  server: 'internalServerException',
  timeout: 'modelStreamErrorException',
};

/** The coral namespace real Bedrock appends to `x-amzn-errortype`. */
const ERROR_TYPE_NAMESPACE =
  'http://internal.amazon.com/coral/com.amazon.bedrock/';

/** Validation messages that mean the prompt does not fit the model. */
const CONTEXT_LENGTH_PATTERN =
  /input is too long|too many (?:input )?tokens|prompt is too long|context (?:length|window)|maximum context/i;

/**
 * An error answer from Bedrock, in API-neutral terms.
 *
 * @example
 * decodeBedrockError(429, { 'x-amzn-errortype': 'ThrottlingException' },
 *   { message: 'Too many requests' }); // kind 'rate_limit'
 */
export function decodeBedrockError(
  status: number,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  body: unknown,
): UpstreamErrorInfo {
  const type = errorType(headers, body);
  const message = errorMessage(body) ?? `Bedrock answered ${status}`;
  const known = type === null ? undefined : ERROR_TYPES[type];

  let kind = known?.kind ?? kindOfStatus(status);
  if (kind === 'invalid_request' && CONTEXT_LENGTH_PATTERN.test(message)) {
    kind = 'context_length';
  }
  return {
    kind,
    status,
    message,
    retryAfter: header(headers, 'retry-after') ?? null,
    upstreamCode: type,
  };
}

/**
 * An exception member of a ConverseStream (`throttlingException`) in
 * API-neutral terms, with the status its type implies.
 */
export function decodeBedrockStreamException(
  member: string,
  payload: unknown,
): UpstreamErrorInfo {
  const type = member.charAt(0).toUpperCase() + member.slice(1);
  const known = ERROR_TYPES[type];
  const info = decodeBedrockError(known?.status ?? 500, {}, payload);
  return {
    ...info,
    kind: known === undefined ? 'server' : info.kind,
    upstreamCode: type,
  };
}

/** The Bedrock error type the gateway answers a Bedrock client with. */
export function bedrockErrorType(kind: ErrorKind): string {
  return TYPE_OF_KIND[kind];
}

/** The ConverseStream exception member for an error of this kind. */
export function bedrockStreamExceptionMember(kind: ErrorKind): string {
  return STREAM_MEMBER_OF_KIND[kind];
}

/**
 * A non-streamed error answer as real Bedrock writes it: the AWS SDK reads
 * the type from `x-amzn-errortype` and raises the class of that name
 * (`ThrottlingException`), with the body's `message`.
 */
export function encodeBedrockError(error: ClientError): {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
} {
  return {
    status: error.status,
    headers: {
      'content-type': 'application/json',
      'x-amzn-errortype': `${bedrockErrorType(error.kind)}:${ERROR_TYPE_NAMESPACE}`,
      'x-amzn-requestid': error.requestId,
    },
    body: JSON.stringify({ message: error.message }),
  };
}

/** The header value for an error type, with Bedrock's namespace suffix. */
export function bedrockErrorTypeHeader(type: string): string {
  return `${type}:${ERROR_TYPE_NAMESPACE}`;
}

function errorType(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  body: unknown,
): string | null {
  const raw =
    header(headers, 'x-amzn-errortype') ??
    (isRecord(body) && typeof body['__type'] === 'string'
      ? body['__type']
      : undefined);
  if (raw === undefined || raw === '') return null;
  // `Type:namespace-uri` in the header, `namespace#Type` in `__type`.
  const name = raw.split(':')[0] ?? raw;
  return name.slice(name.lastIndexOf('#') + 1);
}

function errorMessage(body: unknown): string | undefined {
  if (typeof body === 'string' && body !== '') return body;
  if (!isRecord(body)) return undefined;
  for (const field of ['message', 'Message']) {
    const value = body[field];
    if (typeof value === 'string') return value;
  }
  return undefined;
}

function kindOfStatus(status: number): ErrorKind {
  if (status === 401) return 'authentication';
  if (status === 403) return 'permission';
  if (status === 404) return 'not_found';
  if (status === 408) return 'timeout';
  if (status === 413) return 'request_too_large';
  if (status === 429) return 'rate_limit';
  if (status === 503) return 'overloaded';
  if (status >= 500 || status === 424) return 'server';
  return 'invalid_request';
}

function header(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  name: string,
): string | undefined {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name) continue;
    return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}

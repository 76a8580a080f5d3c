/**
 * What a client is told when the upstream answers with an error, in API-
 * neutral terms; the inbound protocol writes it in the client's format.
 *
 * The upstream refusing our credentials, or not knowing the deployment's
 * model, is the gateway's misconfiguration, not the client's fault: a 502
 * that says so. A refusal of the request itself keeps its meaning (a
 * Bedrock `ThrottlingException` is a 429 with its `Retry-After` to an
 * OpenAI client; a prompt too long for the model is a 400).
 */
import type { UpstreamErrorInfo } from '../../protocol/canonical.js';
import { ApiError, type ErrorCode } from '../api-error.js';

export function upstreamErrorToApiError(info: UpstreamErrorInfo): ApiError {
  const [code, message] = codeAndMessage(info);
  return new ApiError(code, message, {
    ...(info.retryAfter !== null && { retryAfter: info.retryAfter }),
  });
}

function codeAndMessage(info: UpstreamErrorInfo): [ErrorCode, string] {
  const said = `The upstream provider said: ${info.message}`;
  switch (info.kind) {
    case 'invalid_request':
      return ['upstream_rejected', said];
    case 'context_length':
      return ['context_length_exceeded', said];
    case 'content_filter':
      return ['content_filtered', said];
    case 'request_too_large':
      return ['request_too_large', said];
    case 'rate_limit':
      return ['rate_limited', said];
    case 'overloaded':
      return ['upstream_overloaded', said];
    case 'timeout':
      return ['upstream_timeout', said];
    case 'authentication':
    case 'permission':
      return [
        'upstream_auth_failed',
        `The upstream provider refused the gateway's credentials ` +
          `(${info.status}).`,
      ];
    case 'not_found':
      return [
        'upstream_error',
        `The upstream provider does not know the deployment's model ` +
          `(${info.status}): ${info.message}`,
      ];
    case 'server':
      return [
        'upstream_error',
        `The upstream provider failed with status ${info.status}: ` +
          info.message,
      ];
  }
}

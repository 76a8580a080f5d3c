/**
 * Failures to reach an upstream, sorted into what a client needs to know:
 * the upstream could not be reached (502) or did not answer in time (504).
 */
import { errors as undiciErrors } from 'undici';

export type UpstreamFailure = 'unavailable' | 'timeout' | 'aborted';

export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  readonly failure: UpstreamFailure;

  constructor(failure: UpstreamFailure, message: string, cause?: unknown) {
    super(message, { cause });
    this.failure = failure;
  }
}

/** Maps an error thrown by undici (or the network) to an UpstreamError. */
export function classifyUpstreamError(error: unknown): UpstreamError {
  if (error instanceof UpstreamError) return error;
  if (
    error instanceof undiciErrors.HeadersTimeoutError ||
    error instanceof undiciErrors.BodyTimeoutError ||
    error instanceof undiciErrors.ConnectTimeoutError
  ) {
    return new UpstreamError(
      'timeout',
      'the upstream did not answer in time',
      error,
    );
  }
  if (
    error instanceof undiciErrors.RequestAbortedError ||
    (error instanceof Error && error.name === 'AbortError')
  ) {
    return new UpstreamError('aborted', 'the upstream call was aborted', error);
  }
  const code =
    error instanceof Error && 'code' in error ? String(error.code) : 'unknown';
  return new UpstreamError(
    'unavailable',
    `the upstream could not be reached (${code})`,
    error,
  );
}

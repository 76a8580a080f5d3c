/**
 * Turns an upstream's error answer into the answer the client gets.
 *
 * An OpenAI-shaped 4xx passes through unchanged (with `retry-after`), since
 * it describes the client's request. The upstream refusing our credentials
 * is our fault, not the client's, and 5xx means the upstream failed: both
 * become a 502 that says so.
 */
import type { Readable } from 'node:stream';

import { ApiError } from '../api-error.js';

/** Error bodies larger than this are not read in full. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export type RelayedError =
  | {
      readonly kind: 'pass-through';
      readonly status: number;
      readonly body: Buffer;
      readonly retryAfter: string | undefined;
      readonly code: string;
    }
  | { readonly kind: 'gateway'; readonly error: ApiError };

export async function relayUpstreamError(
  status: number,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  body: Readable,
): Promise<RelayedError> {
  const bytes = await readUpTo(body, MAX_ERROR_BODY_BYTES);
  const upstreamMessage = errorMessage(bytes);

  if (status === 401 || status === 403) {
    return {
      kind: 'gateway',
      error: new ApiError(
        'upstream_auth_failed',
        `The upstream provider refused the gateway's credentials (${status}).`,
      ),
    };
  }
  if (status >= 400 && status < 500 && upstreamMessage !== undefined) {
    const retryAfter = headers['retry-after'];
    return {
      kind: 'pass-through',
      status,
      body: bytes,
      retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
      code: `upstream_${status}`,
    };
  }
  return {
    kind: 'gateway',
    error: new ApiError(
      'upstream_error',
      `The upstream provider failed with status ${status}` +
        (upstreamMessage ? `: ${upstreamMessage}` : '.'),
    ),
  };
}

/** The `error.message` of an OpenAI-shaped error body, if it is one. */
function errorMessage(bytes: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as unknown;
    const error = (parsed as { error?: unknown } | null)?.error;
    if (typeof error === 'object' && error !== null) {
      const message = (error as { message?: unknown }).message;
      return typeof message === 'string' ? message : '';
    }
  } catch {
    // Not JSON: the caller treats it as a failed upstream.
  }
  return undefined;
}

async function readUpTo(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buffer = chunk as Buffer;
      chunks.push(buffer);
      size += buffer.length;
      if (size >= limit) break;
    }
  } catch {
    // A body cut short still tells us what it managed to say.
  }
  body.destroy();
  return Buffer.concat(chunks).subarray(0, limit);
}

/**
 * One upstream attempt, up to the moment its answer begins, and what
 * routing should make of it: an answer, or a failure of a fallback class
 * (DESIGN.md, "The request path", step 3).
 *
 * The answer "begins" at different points by kind, because that is as
 * far as a fallback can still be invisible to the client:
 * - an error status: its (bounded) body is read, to tell a context
 *   overflow or a content filter from other refusals;
 * - a JSON answer: it is read whole (it is sent only once settled
 *   anyway), so a filtered answer can be passed over;
 * - a stream: its first event has arrived. One reset before that falls
 *   back; after it, the stream is the client's, for better or worse.
 */
import { Readable } from 'node:stream';

import type { FallbackTrigger } from '../../config/config-schema.js';
import type { AttemptUsage } from '../../metering/meter.js';
import type {
  ErrorKind,
  UpstreamErrorInfo,
  UpstreamProtocol,
} from '../../protocol/canonical.js';
import { classifyUpstreamError } from '../../providers/upstream-error.js';
import type { UpstreamResponse } from '../../providers/upstream.js';
import type {
  AttemptContext,
  AttemptFailure,
  AttemptResult,
} from '../../routing/attempts.js';
import { isJson, parseObject, readAll } from './lifecycle.js';
import { readUpstreamError } from './read-upstream-error.js';

export type Attempted =
  /** No answer came: the call failed, timed out, or the client left. */
  | { readonly kind: 'thrown'; readonly error: unknown }
  /** An answer other than 200; its body holds the bytes read. */
  | { readonly kind: 'status'; readonly response: UpstreamResponse }
  /** A whole JSON answer to a request that did not stream. */
  | {
      readonly kind: 'json';
      readonly response: UpstreamResponse;
      readonly bytes: Buffer;
    }
  /** A stream (or, unasked, something else) whose first event is in. */
  | { readonly kind: 'stream'; readonly response: UpstreamResponse };

export async function attemptUpstream(args: {
  readonly send: (signal: AbortSignal) => Promise<UpstreamResponse>;
  readonly stream: boolean;
  /** The deployment's API, to read its errors and answers. */
  readonly protocol: UpstreamProtocol;
  /** Whether a filtered answer should be passed over (fallback). */
  readonly passOverFiltered: boolean;
  readonly context: AttemptContext;
  /** The client's own signal: its leaving is not the upstream's fault. */
  readonly clientSignal: AbortSignal;
  /**
   * The request's usage estimated from the request alone, for an answer
   * that began (a 200) and was cut off: the provider may bill it.
   */
  readonly estimate: () => Promise<AttemptUsage>;
}): Promise<AttemptResult<Attempted>> {
  const { context } = args;
  const thrown = (error: unknown): AttemptResult<Attempted> => ({
    value: { kind: 'thrown', error },
    failure: failureOfThrown(error, context, args.clientSignal),
  });

  let response: UpstreamResponse;
  try {
    response = await args.send(context.signal);
  } catch (error) {
    return thrown(error);
  }

  if (response.status !== 200) {
    const { bytes, parsed } = await readUpstreamError(response.body);
    const info = args.protocol.decodeError(
      response.status,
      response.headers,
      parsed,
    );
    return {
      value: {
        kind: 'status',
        response: { ...response, body: Readable.from([bytes]) },
      },
      failure: {
        trigger: triggerOf(info.kind),
        retryAfterMs: retryAfterMs(info.retryAfter),
        statusCode: response.status,
        errorCode: `upstream_${response.status}`,
        usage: { kind: 'none' },
      },
    };
  }

  if (!args.stream) {
    let bytes: Buffer;
    try {
      bytes = await readAll(response.body);
    } catch (error) {
      // Answered 200, then cut off (or past the attempt's deadline): the
      // provider may well bill it, so it is a provider-cost record.
      const cut = thrown(error);
      return {
        ...cut,
        failure: cut.failure && {
          ...cut.failure,
          usage: await args.estimate(),
        },
      };
    }
    const value: Attempted = {
      kind: 'json',
      response: { ...response, body: Readable.from([bytes]) },
      bytes,
    };
    const filtered = args.passOverFiltered
      ? filteredUsage(args.protocol, bytes)
      : null;
    if (!filtered) return { value, failure: null };
    return {
      value,
      failure: {
        trigger: 'content_filter',
        retryAfterMs: null,
        statusCode: 200,
        errorCode: 'content_filter',
        usage: filtered,
      },
    };
  }

  // A JSON body where a stream was asked for is the caller's to refuse.
  if (
    response.body.readableObjectMode === false &&
    isJson(response.headers['content-type'])
  ) {
    return { value: { kind: 'stream', response }, failure: null };
  }
  let first: unknown;
  try {
    first = await firstEventIn(response.body, context.signal);
  } catch (error) {
    response.body.destroy();
    return thrown(error);
  }
  const value: Attempted = { kind: 'stream', response };
  // A stream that opens with an error (an overload, a throttle) has
  // shown nothing: it can still fall back. Served, it is relayed as is.
  const error = openingError(args.protocol, first);
  if (!error) return { value, failure: null };
  return {
    value,
    failure: {
      trigger: triggerOf(error.kind),
      retryAfterMs: retryAfterMs(error.retryAfter),
      statusCode: error.status,
      errorCode: `upstream_${error.status}`,
      usage: { kind: 'none' },
    },
  };
}

/** The error a stream's first event reports, if it is one. */
function openingError(
  protocol: UpstreamProtocol,
  first: unknown,
): UpstreamErrorInfo | null {
  try {
    const frames = protocol
      .createStreamDecoder()
      .push(first as Buffer | Readonly<Record<string, unknown>>);
    const events = frames.flatMap((frame) => frame.events);
    const opening = events[0];
    return opening?.type === 'error' ? opening.error : null;
  } catch {
    // A first event the decoder refuses is the relay's to report.
    return null;
  }
}

/** Closes what a superseded attempt left open. */
export function discardAttempt(value: Attempted): void {
  if (value.kind === 'thrown') return;
  const body = value.response.body;
  // Destroying an upstream body can make it emit its abort as an error;
  // nobody reads this one any more.
  body.on('error', () => undefined);
  body.destroy();
}

/** Which fallback class an upstream's error kind is in. */
function triggerOf(kind: ErrorKind): FallbackTrigger | null {
  switch (kind) {
    case 'rate_limit':
      return 'rate_limited';
    case 'overloaded':
    case 'server':
      return 'server_error';
    case 'timeout':
      return 'timeout';
    case 'context_length':
      return 'context_length';
    case 'content_filter':
      return 'content_filter';
    case 'authentication':
    case 'permission':
      return 'upstream_auth';
    case 'not_found':
      return 'not_found';
    case 'invalid_request':
    case 'request_too_large':
      return null;
  }
}

function failureOfThrown(
  error: unknown,
  context: AttemptContext,
  clientSignal: AbortSignal,
): AttemptFailure {
  const none = { kind: 'none' } as const;
  if (clientSignal.aborted) {
    // The client left (or the gateway is shutting down): nothing to
    // retry for.
    return {
      trigger: null,
      retryAfterMs: null,
      statusCode: null,
      errorCode: 'client_disconnected',
      usage: none,
    };
  }
  if (context.timedOut() !== null) {
    return {
      trigger: 'timeout',
      retryAfterMs: null,
      statusCode: null,
      errorCode: 'upstream_timeout',
      usage: none,
    };
  }
  const failure = classifyUpstreamError(error).failure;
  return {
    trigger:
      failure === 'timeout'
        ? 'timeout'
        : failure === 'unavailable'
          ? 'connection'
          : null,
    retryAfterMs: null,
    statusCode: null,
    errorCode:
      failure === 'timeout'
        ? 'upstream_timeout'
        : failure === 'unavailable'
          ? 'upstream_unavailable'
          : 'shutting_down',
    usage: none,
  };
}

/** `Retry-After` (seconds or an HTTP date) in ms from now; null if none. */
export function retryAfterMs(
  value: string | null,
  now = Date.now(),
): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) {
    return Math.round(Number(trimmed) * 1000);
  }
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** The usage of an answer its provider filtered, or null if it was not. */
function filteredUsage(
  protocol: UpstreamProtocol,
  bytes: Buffer,
): AttemptUsage | null {
  const json = parseObject(bytes);
  if (!json) return null;
  try {
    const answer = protocol.decodeResponse(json);
    if (answer.stopReason !== 'content_filter') return null;
    return { kind: 'reported', usage: answer.usage, raw: answer.rawUsage };
  } catch {
    // An answer we cannot read is the answer; serving it decides.
    return null;
  }
}

/**
 * Bytes of a stream read before its first event is taken to have begun
 * even without the blank line that ends an event.
 */
const FIRST_EVENT_MAX_BYTES = 64 * 1024;

/** The blank line that ends a server-sent event, in any line ending. */
const EVENT_END = /\r\n\r\n|\n\n|\r\r/;

/**
 * Waits for a stream's first event, puts it back at the stream's head
 * (so the stream yields it and everything after) and returns it. Throws
 * if the stream fails or ends first.
 *
 * In object mode (a provider SDK that decodes the events) the first
 * object is the first event. A byte stream is server-sent events, and
 * its first event is in once the blank line that ends it is: the relays
 * pass on only whole events, so a stream cut or stalled inside its first
 * one has shown the client nothing, and can still fall back within the
 * attempt's deadline.
 */
async function firstEventIn(
  body: Readable,
  signal: AbortSignal,
): Promise<unknown> {
  const chunks: Buffer[] = [];
  const first = await new Promise<unknown>((resolve, reject) => {
    const cleanup = () => {
      body.off('readable', onReadable);
      body.off('error', onError);
      body.off('end', onEnd);
      body.off('close', onEnd);
      signal.removeEventListener('abort', onAbort);
    };
    const onReadable = () => {
      for (;;) {
        const chunk: unknown = body.read();
        if (chunk === null) return;
        if (body.readableObjectMode) {
          cleanup();
          resolve(chunk);
          return;
        }
        chunks.push(
          typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer),
        );
        const read = Buffer.concat(chunks);
        if (
          read.length >= FIRST_EVENT_MAX_BYTES ||
          EVENT_END.test(read.toString('latin1'))
        ) {
          cleanup();
          resolve(read);
          return;
        }
      }
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onEnd = () => {
      cleanup();
      reject(new StreamEndedEarly());
    };
    const onAbort = () => {
      cleanup();
      reject(
        signal.reason instanceof Error ? signal.reason : new Error('aborted'),
      );
    };
    body.on('readable', onReadable);
    body.on('error', onError);
    body.on('end', onEnd);
    body.on('close', onEnd);
    signal.addEventListener('abort', onAbort, { once: true });
    onReadable();
  });
  body.unshift(first);
  return first;
}

/** A stream that ended (or was reset) before its first event. */
class StreamEndedEarly extends Error {
  override readonly name = 'StreamEndedEarly';
  readonly code = 'ECONNRESET';
  constructor() {
    super('the upstream stream ended before its first event');
  }
}

/**
 * Relays an upstream's stream to the client as it arrives, in the
 * client's API: frames pass through byte for byte when the upstream
 * speaks that API, and are re-encoded from canonical events when not.
 *
 * Nothing is buffered but the end. Once the upstream has stopped the
 * message, sent its final usage or reported an error, what follows is
 * held until the request's usage is durable, so no client sees a finished
 * (or failed) answer whose usage could still be lost (DESIGN.md, "Durable
 * first").
 *
 * A client that goes away aborts the upstream call; the usage is then
 * estimated from what was delivered, and marked so. An upstream that
 * fails mid-stream ends the client's stream with an error event in the
 * client's format.
 */
import type { AttemptUsage } from '../../metering/meter.js';
import type { NormalizedUsage } from '../../metering/usage.js';
import {
  UpstreamProtocolError,
  type CanonicalStreamEvent,
  type DecodedFrame,
  type UpstreamErrorInfo,
  type WireApi,
} from '../../protocol/canonical.js';
import { SseEventTooLargeError } from '../../providers/sse-splitter.js';
import type { UpstreamResponse } from '../../providers/upstream.js';
import { classifyUpstreamError } from '../../providers/upstream-error.js';
import { ApiError, toClientError } from '../api-error.js';
import type { GatewayContext } from '../gateway-context.js';
import { estimatedAttempt } from './estimate-usage.js';
import type { Exchange } from './handle-inference.js';
import { CLIENT_CLOSED_REQUEST, wasDelivered, write } from './lifecycle.js';
import { upstreamErrorToApiError } from './upstream-errors.js';

export interface StreamOutcome {
  readonly usage: AttemptUsage;
  readonly statusCode: number;
  readonly errorCode: string | null;
}

/** Where each API's clients read the request id of an answer. */
export const REQUEST_ID_HEADERS: Readonly<Record<WireApi, string>> = {
  'openai-chat': 'x-request-id',
  'openai-responses': 'x-request-id',
  'anthropic-messages': 'request-id',
  'bedrock-converse': 'x-amzn-requestid',
};

export async function relayStream(
  ctx: GatewayContext,
  exchange: Exchange,
  upstream: UpstreamResponse,
  settle: (outcome: StreamOutcome) => Promise<void>,
): Promise<void> {
  const { record, abort, inbound, canonical } = exchange;
  const response = exchange.reply.raw;
  let clientGone = false;
  response.on('error', () => {
    clientGone = true;
  });
  response.on('close', () => {
    if (!wasDelivered(response)) {
      clientGone = true;
      abort.abort();
    }
  });

  const encoder = inbound.createStreamEncoder({
    requestId: record.id,
    model: canonical.model,
    includeUsage: canonical.includeUsage,
  });
  const decoder = exchange.upstream.createStreamDecoder();
  response.writeHead(200, {
    'content-type': encoder.contentType,
    'cache-control': 'no-cache',
    'x-request-id': record.id,
    [REQUEST_ID_HEADERS[inbound.api]]: record.id,
  });
  response.flushHeaders();

  const seen = new StreamState();
  /** The end of the stream, held until the usage is durable. */
  const held: Buffer[] = [];

  const relay = async (frame: DecodedFrame): Promise<void> => {
    // Nothing after an upstream error is passed on or metered.
    if (seen.error) return;
    const translated: Buffer[] = [];
    for (const event of frame.events) {
      seen.add(event);
      if (!exchange.passthrough && event.type !== 'error') {
        translated.push(encoder.encode(event));
      }
    }
    const bytes = exchange.passthrough
      ? encoder.passthrough(frame)
      : Buffer.concat(translated);
    if (bytes.length === 0) return;
    if (seen.ending) {
      held.push(bytes);
      return;
    }
    const wait = write(response, bytes, abort.signal);
    if (wait) await wait;
  };

  let failure: ApiError | undefined;
  try {
    for await (const chunk of upstream.body) {
      for (const frame of decoder.push(chunk as Buffer)) await relay(frame);
    }
    for (const frame of decoder.end()) await relay(frame);
  } catch (error) {
    failure = clientGone ? undefined : streamFailure(error, abort.signal);
    if (error instanceof UpstreamProtocolError) {
      ctx.logger.warn(
        { requestId: record.id, reason: error.message },
        'upstream stream is malformed; usage will be estimated',
      );
    }
  }

  const usage: Exclude<AttemptUsage, { kind: 'none' }> = seen.finalUsage
    ? { kind: 'reported', ...seen.finalUsage }
    : await estimatedAttempt(
        canonical,
        seen.earlyUsage,
        seen.deliveredText,
        record.reservedInputTokens,
      );
  if (clientGone) {
    await settle({
      usage,
      statusCode: CLIENT_CLOSED_REQUEST,
      errorCode: 'client_disconnected',
    });
    return;
  }
  if (!failure && seen.error && !exchange.passthrough) {
    failure = upstreamErrorToApiError(seen.error);
  }
  if (!failure && !seen.error && !seen.stopped) {
    failure = new ApiError(
      'upstream_error',
      'The upstream stream ended before it was complete.',
    );
  }
  if (!failure && !seen.error && !seen.finalUsage && !exchange.passthrough) {
    // The upstream stopped without its usage: close the client's stream
    // with the estimate, as its API requires some usage at the end.
    held.push(
      encoder.encode({
        type: 'usage',
        usage: usage.usage,
        raw: undefined,
        final: true,
      }),
    );
  }

  // An upstream error passed through is the client's error event already.
  const errorCode =
    failure?.code ?? (seen.error ? upstreamErrorCode(seen.error) : null);
  await settle({ usage, statusCode: 200, errorCode });
  if (failure) {
    held.push(encoder.encodeError(toClientError(failure, record.id)));
  }
  response.end(Buffer.concat(held));
}

/** What the stream has said so far, as far as metering cares. */
class StreamState {
  finalUsage: { usage: NormalizedUsage; raw: unknown } | undefined;
  earlyUsage: NormalizedUsage | null = null;
  stopped = false;
  error: UpstreamErrorInfo | undefined;
  #delivered: string[] = [];

  /**
   * From the stop, the final usage or an upstream error on, the rest is
   * the stream's end. An error passed through is held too: a client's SDK
   * hangs up on it, and the request must be settled as the upstream's
   * error, not as a client that left.
   */
  get ending(): boolean {
    return (
      this.stopped || this.finalUsage !== undefined || this.error !== undefined
    );
  }

  get deliveredText(): string {
    return this.#delivered.join('');
  }

  add(event: CanonicalStreamEvent): void {
    switch (event.type) {
      case 'usage':
        if (event.final) {
          this.finalUsage = { usage: event.usage, raw: event.raw };
        } else {
          this.earlyUsage = event.usage;
        }
        return;
      case 'message_stop':
        this.stopped = true;
        return;
      case 'error':
        this.error = event.error;
        return;
      case 'text_delta':
      case 'thinking_delta':
        this.#delivered.push(event.text);
        return;
      case 'tool_input_delta':
        this.#delivered.push(event.json);
        return;
      case 'block_start':
        if (event.block.type === 'tool_use') {
          this.#delivered.push(event.block.name);
        }
        return;
      case 'message_start':
      case 'signature_delta':
      case 'block_stop':
        return;
    }
  }
}

function upstreamErrorCode(error: UpstreamErrorInfo): string {
  return upstreamErrorToApiError(error).code;
}

function streamFailure(error: unknown, signal: AbortSignal): ApiError {
  if (signal.aborted) {
    return new ApiError(
      'shutting_down',
      'The gateway stopped this stream while shutting down.',
    );
  }
  if (error instanceof SseEventTooLargeError) {
    return new ApiError(
      'upstream_error',
      `The upstream sent ${error.message}.`,
    );
  }
  if (error instanceof UpstreamProtocolError) {
    return new ApiError(
      'upstream_error',
      `The upstream stream could not be read: ${error.message}.`,
    );
  }
  return classifyUpstreamError(error).failure === 'timeout'
    ? new ApiError(
        'upstream_timeout',
        'The upstream provider stopped sending during the stream.',
      )
    : new ApiError(
        'upstream_error',
        'The upstream connection broke during the stream.',
      );
}

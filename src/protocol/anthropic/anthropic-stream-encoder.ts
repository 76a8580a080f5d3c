/**
 * Canonical stream events → an Anthropic Messages SSE stream, framed the
 * way Anthropic frames it (`event: <type>\ndata: <json>\n\n`), so that
 * `@anthropic-ai/sdk` reads a translated stream like a real one.
 *
 * Two Anthropic events need facts that canonical streams deliver apart:
 *
 * - `message_start` carries the input usage. It is held until the first
 *   early usage event, or at the latest until the first block starts, so
 *   no text waits on it; with no early usage its counts are zeros, and the
 *   real ones arrive in `message_delta`, which clients take as final.
 * - `message_delta` carries both the stop reason and the final usage, which
 *   canonical streams send as two events (in either order). It goes out
 *   once both are in, followed by `message_stop`.
 */
import type {
  CanonicalStreamEvent,
  ClientError,
  DecodedFrame,
  StreamEncoder,
} from '../canonical.js';
import type { NormalizedUsage } from '../../metering/usage.js';
import { anthropicStopReason } from './anthropic-content.js';
import { anthropicErrorType } from './anthropic-errors.js';
import {
  anthropicDeltaUsage,
  anthropicUsage,
  ZERO_ANTHROPIC_USAGE,
} from './anthropic-usage.js';

type StopEvent = Extract<CanonicalStreamEvent, { type: 'message_stop' }>;

export interface AnthropicStreamContext {
  readonly requestId: string;
  /** The model as the client named it (the public alias). */
  readonly model: string;
}

export class AnthropicStreamEncoder implements StreamEncoder {
  readonly contentType = 'text/event-stream; charset=utf-8';
  readonly #context: AnthropicStreamContext;
  /** The message id, while `message_start` is held back. */
  #pendingStartId: string | undefined;
  #stop: StopEvent | undefined;
  #finalUsage: NormalizedUsage | undefined;
  #finished = false;

  constructor(context: AnthropicStreamContext) {
    this.#context = context;
  }

  encode(event: CanonicalStreamEvent): Buffer {
    const frames: string[] = [];
    switch (event.type) {
      case 'message_start':
        // Bedrock gives its answers no id; a client still needs one.
        this.#pendingStartId = event.id || `msg_${this.#context.requestId}`;
        break;
      case 'usage':
        if (!event.final) {
          this.#flushStart(frames, anthropicUsage(event.usage));
          break;
        }
        this.#finalUsage = event.usage;
        this.#flushStart(frames);
        this.#flushStop(frames);
        break;
      case 'message_stop':
        this.#stop = event;
        this.#flushStart(frames);
        this.#flushStop(frames);
        break;
      case 'block_start':
        this.#flushStart(frames);
        frames.push(
          sse('content_block_start', {
            type: 'content_block_start',
            index: event.index,
            content_block: contentBlockStart(event.block),
          }),
        );
        break;
      case 'text_delta':
      case 'thinking_delta':
      case 'signature_delta':
      case 'tool_input_delta':
        this.#flushStart(frames);
        frames.push(
          sse('content_block_delta', {
            type: 'content_block_delta',
            index: event.index,
            delta: blockDelta(event),
          }),
        );
        break;
      case 'block_stop':
        frames.push(
          sse('content_block_stop', {
            type: 'content_block_stop',
            index: event.index,
          }),
        );
        break;
      case 'error':
        frames.push(
          this.#errorFrame(
            anthropicErrorType(event.error.kind, event.error.status),
            event.error.message,
          ),
        );
        break;
    }
    return Buffer.from(frames.join(''), 'utf8');
  }

  /** Frames from an Anthropic upstream go out exactly as they came. */
  passthrough(frame: DecodedFrame): Buffer {
    if (!Buffer.isBuffer(frame.raw)) {
      throw new TypeError('an Anthropic frame is bytes, not an event object');
    }
    return frame.raw;
  }

  encodeError(error: ClientError): Buffer {
    return Buffer.from(
      this.#errorFrame(
        anthropicErrorType(error.kind, error.status),
        error.message,
      ),
      'utf8',
    );
  }

  #errorFrame(type: string, message: string): string {
    return sse('error', {
      type: 'error',
      error: { type, message },
      request_id: this.#context.requestId,
    });
  }

  /** Sends the held `message_start`, if any, with this usage. */
  #flushStart(
    frames: string[],
    usage: Record<string, unknown> = ZERO_ANTHROPIC_USAGE,
  ): void {
    const id = this.#pendingStartId;
    if (id === undefined) return;
    this.#pendingStartId = undefined;
    frames.push(
      sse('message_start', {
        type: 'message_start',
        message: {
          id,
          type: 'message',
          role: 'assistant',
          model: this.#context.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage,
        },
      }),
    );
  }

  /** Sends `message_delta` and `message_stop` once both halves are in. */
  #flushStop(frames: string[]): void {
    const stop = this.#stop;
    const usage = this.#finalUsage;
    if (stop === undefined || usage === undefined || this.#finished) return;
    this.#finished = true;
    frames.push(
      sse('message_delta', {
        type: 'message_delta',
        delta: {
          stop_reason: anthropicStopReason(stop.stopReason),
          stop_sequence: stop.stopSequence,
        },
        usage: anthropicDeltaUsage(usage),
      }),
      sse('message_stop', { type: 'message_stop' }),
    );
  }
}

function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function contentBlockStart(
  block: Extract<CanonicalStreamEvent, { type: 'block_start' }>['block'],
): Record<string, unknown> {
  switch (block.type) {
    case 'text':
      return { type: 'text', text: '' };
    case 'thinking':
      return { type: 'thinking', thinking: '', signature: '' };
    case 'tool_use':
      return { type: 'tool_use', id: block.id, name: block.name, input: {} };
  }
}

function blockDelta(
  event: Extract<
    CanonicalStreamEvent,
    {
      type:
        | 'text_delta'
        | 'thinking_delta'
        | 'signature_delta'
        | 'tool_input_delta';
    }
  >,
): Record<string, unknown> {
  switch (event.type) {
    case 'text_delta':
      return { type: 'text_delta', text: event.text };
    case 'thinking_delta':
      return { type: 'thinking_delta', thinking: event.text };
    case 'signature_delta':
      return { type: 'signature_delta', signature: event.signature };
    case 'tool_input_delta':
      return { type: 'input_json_delta', partial_json: event.json };
  }
}

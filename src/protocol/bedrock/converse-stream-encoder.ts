/**
 * Canonical stream events, and frames passed through from a Bedrock
 * upstream, as ConverseStream's binary event stream.
 *
 * Real Bedrock opens only tool-use blocks with `contentBlockStart`, and
 * sends usage last, in `metadata`, after `messageStop`. Upstreams that
 * give usage before their stop event (Anthropic's `message_delta`) are
 * reordered to match: final usage waits for the stop.
 *
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html#API_runtime_ConverseStream_ResponseSyntax
 */
import type {
  CanonicalStreamEvent,
  ClientError,
  DecodedFrame,
  StreamEncoder,
} from '../canonical.js';
import { bedrockStreamExceptionMember } from './bedrock-errors.js';
import { converseStopReason } from './converse-stop-reason.js';
import { converseUsage } from './encode-converse-response.js';
import {
  encodeEventFrame,
  encodeEventObject,
  encodeExceptionFrame,
  EVENT_STREAM_CONTENT_TYPE,
} from './event-stream-frames.js';

const NOTHING = Buffer.alloc(0);

export class ConverseStreamEncoder implements StreamEncoder {
  readonly contentType = EVENT_STREAM_CONTENT_TYPE;
  readonly #now: () => number;
  readonly #startedAt: number;
  #stopped = false;
  /** Final usage held until `messageStop` has been sent. */
  #heldMetadata: Buffer | undefined;

  /** @param now the clock that `metrics.latencyMs` is measured on */
  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.#startedAt = now();
  }

  encode(event: CanonicalStreamEvent): Buffer {
    switch (event.type) {
      case 'message_start':
        return encodeEventFrame('messageStart', { role: 'assistant' });
      case 'block_start':
        if (event.block.type !== 'tool_use') return NOTHING;
        return encodeEventFrame('contentBlockStart', {
          contentBlockIndex: event.index,
          start: {
            toolUse: { toolUseId: event.block.id, name: event.block.name },
          },
        });
      case 'text_delta':
        return delta(event.index, { text: event.text });
      case 'thinking_delta':
        return delta(event.index, { reasoningContent: { text: event.text } });
      case 'signature_delta':
        return delta(event.index, {
          reasoningContent: { signature: event.signature },
        });
      case 'tool_input_delta':
        return delta(event.index, { toolUse: { input: event.json } });
      case 'block_stop':
        return encodeEventFrame('contentBlockStop', {
          contentBlockIndex: event.index,
        });
      case 'message_stop': {
        this.#stopped = true;
        const stop = encodeEventFrame('messageStop', {
          stopReason: converseStopReason(event.stopReason),
        });
        const held = this.#heldMetadata ?? NOTHING;
        this.#heldMetadata = undefined;
        return Buffer.concat([stop, held]);
      }
      case 'usage': {
        if (!event.final) return NOTHING;
        const metadata = encodeEventFrame('metadata', {
          usage: converseUsage(event.usage),
          metrics: { latencyMs: this.#now() - this.#startedAt },
        });
        if (this.#stopped) return metadata;
        this.#heldMetadata = metadata;
        return NOTHING;
      }
      case 'error':
        return encodeExceptionFrame(
          bedrockStreamExceptionMember(event.error.kind),
          { message: event.error.message },
        );
    }
  }

  passthrough(frame: DecodedFrame): Buffer {
    return Buffer.isBuffer(frame.raw)
      ? frame.raw
      : encodeEventObject(frame.raw);
  }

  encodeError(error: ClientError): Buffer {
    return encodeExceptionFrame(bedrockStreamExceptionMember(error.kind), {
      message: error.message,
    });
  }
}

function delta(index: number, body: Record<string, unknown>): Buffer {
  return encodeEventFrame('contentBlockDelta', {
    contentBlockIndex: index,
    delta: body,
  });
}

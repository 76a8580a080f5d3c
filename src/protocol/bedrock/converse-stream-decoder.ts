/**
 * ConverseStream, read incrementally into canonical stream events.
 *
 * It takes either form the stream comes in: event objects as the AWS SDK
 * surfaces them (`{ contentBlockDelta: { … } }`, and `{ throttlingException:
 * { message } }` for an error), or the raw `vnd.amazon.eventstream` bytes
 * at any boundaries. Each frame's `raw` is its event object as received
 * (Bedrock's random `p` padding included), which is what a Bedrock client
 * gets when the stream passes through; an unmodelled `error` message keeps
 * its bytes.
 *
 * Bedrock opens only tool-use blocks with `contentBlockStart`; a text or
 * reasoning block begins with its first delta, so the decoder starts the
 * canonical block there. Bedrock's messages carry no id and no model name,
 * so `message_start` has empty ones. Usage is in the last event,
 * `metadata`, and is final.
 *
 * Members with no canonical form (image, citation, tool-result and
 * redacted-reasoning deltas, and any event added later) give no canonical
 * events; their frames still pass through to Bedrock clients.
 *
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
 */
import { isRecord } from '../../metering/usage.js';
import { normalizeBedrockUsage } from '../../providers/bedrock/normalize-bedrock-usage.js';
import {
  UpstreamProtocolError,
  type CanonicalStreamEvent,
  type DecodedFrame,
  type StreamDecoder,
} from '../canonical.js';
import { decodeBedrockStreamException } from './bedrock-errors.js';
import {
  canonicalStopReason,
  converseStopSequence,
} from './converse-stop-reason.js';
import {
  eventMember,
  EventStreamSplitter,
  isExceptionMember,
  type EventObject,
  type StreamMessage,
} from './event-stream-frames.js';

type BlockType = 'text' | 'thinking' | 'tool_use';

interface OpenBlock {
  readonly index: number;
  readonly type: BlockType;
}

export class ConverseStreamDecoder implements StreamDecoder {
  readonly #splitter = new EventStreamSplitter();
  /** Canonical blocks by Bedrock's `contentBlockIndex`. */
  readonly #blocks = new Map<number, OpenBlock>();
  #nextIndex = 0;

  push(chunk: Buffer | Readonly<Record<string, unknown>>): DecodedFrame[] {
    if (chunk instanceof Uint8Array) {
      return this.#splitter
        .push(chunk)
        .map((message) => this.#message(message));
    }
    return [this.#event(chunk)];
  }

  end(): DecodedFrame[] {
    const pending = this.#splitter.pendingBytes;
    if (pending > 0) {
      throw new UpstreamProtocolError(
        `ConverseStream ended inside a frame (${pending} bytes left over)`,
      );
    }
    return [];
  }

  #message(message: StreamMessage): DecodedFrame {
    if (message.kind === 'error') {
      const info = decodeBedrockStreamException('internalServerException', {
        message: `${message.code}: ${message.message}`,
      });
      return {
        raw: message.bytes,
        events: [
          { type: 'error', error: { ...info, upstreamCode: message.code } },
        ],
      };
    }
    return this.#event({ [message.type]: message.payload });
  }

  #event(event: EventObject): DecodedFrame {
    const member = eventMember(event);
    if (member === undefined) {
      throw new UpstreamProtocolError('a ConverseStream event has no member');
    }
    return { raw: event, events: this.#canonical(member.type, member.payload) };
  }

  #canonical(type: string, payload: unknown): CanonicalStreamEvent[] {
    if (isExceptionMember(type)) {
      return [
        { type: 'error', error: decodeBedrockStreamException(type, payload) },
      ];
    }
    switch (type) {
      case 'messageStart':
        return [{ type: 'message_start', id: '', model: '' }];
      case 'contentBlockStart':
        return this.#blockStart(record(payload, type));
      case 'contentBlockDelta':
        return this.#blockDelta(record(payload, type));
      case 'contentBlockStop':
        return this.#blockStop(record(payload, type));
      case 'messageStop': {
        const stop = record(payload, type);
        return [
          {
            type: 'message_stop',
            stopReason: canonicalStopReason(stop['stopReason']),
            stopSequence: converseStopSequence(
              stop['additionalModelResponseFields'],
            ),
          },
        ];
      }
      case 'metadata': {
        const usage = record(payload, type)['usage'];
        if (usage === undefined) return [];
        return [
          {
            type: 'usage',
            usage: normalizeBedrockUsage(usage),
            raw: usage,
            final: true,
          },
        ];
      }
    }
    return [];
  }

  #blockStart(payload: Record<string, unknown>): CanonicalStreamEvent[] {
    const position = blockIndex(payload);
    const start = payload['start'];
    const toolUse = isRecord(start) ? start['toolUse'] : undefined;
    if (!isRecord(toolUse)) return [];
    const id = toolUse['toolUseId'];
    const name = toolUse['name'];
    if (typeof id !== 'string' || typeof name !== 'string') {
      throw new UpstreamProtocolError(
        'contentBlockStart toolUse lacks its toolUseId or name',
      );
    }
    const [event] = this.#open(position, 'tool_use');
    return event === undefined
      ? []
      : [{ ...event, block: { type: 'tool_use', id, name } }];
  }

  #blockDelta(payload: Record<string, unknown>): CanonicalStreamEvent[] {
    const position = blockIndex(payload);
    const delta = record(payload['delta'], 'contentBlockDelta.delta');

    if (typeof delta['text'] === 'string') {
      const opened = this.#open(position, 'text');
      const index = this.#indexOf(position, 'text');
      return [...opened, { type: 'text_delta', index, text: delta['text'] }];
    }
    const reasoning = delta['reasoningContent'];
    if (isRecord(reasoning)) {
      const { text, signature } = reasoning;
      if (typeof text !== 'string' && typeof signature !== 'string') {
        return []; // redacted reasoning: passed through only
      }
      const opened = this.#open(position, 'thinking');
      const index = this.#indexOf(position, 'thinking');
      const events: CanonicalStreamEvent[] = [...opened];
      if (typeof text === 'string') {
        events.push({ type: 'thinking_delta', index, text });
      }
      if (typeof signature === 'string') {
        events.push({ type: 'signature_delta', index, signature });
      }
      return events;
    }
    const toolUse = delta['toolUse'];
    if (isRecord(toolUse)) {
      const input = toolUse['input'];
      if (typeof input !== 'string') {
        throw new UpstreamProtocolError('toolUse delta input is not a string');
      }
      const index = this.#indexOf(position, 'tool_use');
      return [{ type: 'tool_input_delta', index, json: input }];
    }
    return [];
  }

  #blockStop(payload: Record<string, unknown>): CanonicalStreamEvent[] {
    const block = this.#blocks.get(blockIndex(payload));
    return block === undefined
      ? []
      : [{ type: 'block_stop', index: block.index }];
  }

  /** Starts the canonical block for `position`, unless it is open. */
  #open(
    position: number,
    type: BlockType,
  ): Extract<CanonicalStreamEvent, { type: 'block_start' }>[] {
    if (this.#blocks.has(position)) {
      if (type === 'tool_use') {
        throw new UpstreamProtocolError(
          `contentBlockStart for block ${position}, which has begun`,
        );
      }
      return [];
    }
    const index = this.#nextIndex++;
    this.#blocks.set(position, { index, type });
    return [
      {
        type: 'block_start',
        index,
        block: type === 'tool_use' ? { type, id: '', name: '' } : { type },
      },
    ];
  }

  /** The canonical index of an open block, which must be of `type`. */
  #indexOf(position: number, type: BlockType): number {
    const block = this.#blocks.get(position);
    if (block?.type !== type) {
      throw new UpstreamProtocolError(
        `a ${type} delta for block ${position}, which is ` +
          (block === undefined ? 'not open' : `a ${block.type} block`),
      );
    }
    return block.index;
  }
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (!isRecord(value)) {
    throw new UpstreamProtocolError(`${what} is not a JSON object`);
  }
  return value;
}

function blockIndex(payload: Record<string, unknown>): number {
  const index = payload['contentBlockIndex'];
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) {
    throw new UpstreamProtocolError(
      `contentBlockIndex ${JSON.stringify(index)} is not a block index`,
    );
  }
  return index;
}

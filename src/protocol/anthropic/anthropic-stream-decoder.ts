/**
 * Decodes an Anthropic Messages SSE stream into frames, one per SSE event,
 * each with its exact bytes (for a client of the same API) and its
 * canonical events (for a client of another).
 *
 * Anthropic's events map onto canonical ones almost one to one:
 *
 * | Anthropic event           | canonical events                          |
 * | ------------------------- | ----------------------------------------- |
 * | `message_start`           | `message_start`, `usage` (final: false)   |
 * | `content_block_start`     | `block_start` (+ a delta for initial text) |
 * | `content_block_delta`     | `text_delta`, `thinking_delta`, …         |
 * | `content_block_stop`      | `block_stop`                              |
 * | `message_delta`           | `message_stop`, `usage` (final: true)     |
 * | `message_stop`, `ping`    | none                                      |
 * | `error`                   | `error`                                   |
 *
 * Blocks with no canonical form (a server tool's call and result, redacted
 * thinking) yield no events, and canonical block indexes skip them, so a
 * translated stream stays numbered from 0. Each such block is recorded in
 * `untranslatable`: a gateway translating the stream for another API must
 * check it, since the client would otherwise miss part of the answer.
 *
 * @see https://docs.anthropic.com/en/docs/build-with-claude/streaming
 */
import {
  UntranslatableError,
  UpstreamProtocolError,
  type CanonicalStreamEvent,
  type DecodedFrame,
  type StreamDecoder,
} from '../canonical.js';
import { isRecord } from '../../metering/usage.js';
import {
  mergeAnthropicStreamUsage,
  normalizeAnthropicUsage,
} from '../../providers/anthropic/normalize-anthropic-usage.js';
import { SseSplitter, type SseEvent } from '../../providers/sse-splitter.js';
import { canonicalStopReason } from './anthropic-content.js';
import { anthropicStreamErrorInfo } from './anthropic-errors.js';

type Json = Readonly<Record<string, unknown>>;

/** A block the stream has started: its canonical index and kind. */
type OpenBlock =
  | { readonly kind: 'text' | 'thinking' | 'tool_use'; readonly index: number }
  | { readonly kind: 'untranslatable' };

/** Which delta type each translatable block kind takes. */
const DELTA_TYPES = {
  text_delta: { block: 'text', field: 'text' },
  thinking_delta: { block: 'thinking', field: 'thinking' },
  signature_delta: { block: 'thinking', field: 'signature' },
  input_json_delta: { block: 'tool_use', field: 'partial_json' },
} as const;

export class AnthropicStreamDecoder implements StreamDecoder {
  readonly #splitter = new SseSplitter();
  /** `message_start`'s usage block, overlaid by `message_delta`'s. */
  #startUsage: Json | undefined;
  #stopped = false;
  /** Blocks by Anthropic's index, and the ones already stopped. */
  readonly #blocks = new Map<number, OpenBlock>();
  readonly #closed = new Set<number>();
  #nextIndex = 0;
  readonly #untranslatable: UntranslatableError[] = [];

  /**
   * Parts of the answer that produced no canonical events. Empty for a
   * stream that translates in full.
   */
  get untranslatable(): readonly UntranslatableError[] {
    return this.#untranslatable;
  }

  get sawUntranslatable(): boolean {
    return this.#untranslatable.length > 0;
  }

  /** True once `message_stop` arrived: the stream is whole. */
  get complete(): boolean {
    return this.#stopped;
  }

  push(chunk: Buffer | Json): DecodedFrame[] {
    if (!Buffer.isBuffer(chunk)) {
      throw new TypeError('an Anthropic stream is bytes, not event objects');
    }
    return this.#splitter.push(chunk).map((event) => this.#frame(event));
  }

  /**
   * The stream ended. Bytes after the last blank line are a last event
   * only if they hold a whole one; anything else was cut mid-event.
   */
  end(): DecodedFrame[] {
    const rest = this.#splitter.rest();
    if (rest.toString('utf8').trim() === '') return [];
    const events = this.#splitter
      .push(Buffer.from('\n\n'))
      .filter((event) => event.data !== undefined);
    const [last] = events;
    if (last === undefined || events.length > 1) {
      throw new UpstreamProtocolError('the stream ended inside an SSE event');
    }
    return [{ raw: rest, events: this.#decode(last, rest) }];
  }

  #frame(event: SseEvent): DecodedFrame {
    return { raw: event.raw, events: this.#decode(event, event.raw) };
  }

  #decode(event: SseEvent, raw: Buffer): CanonicalStreamEvent[] {
    if (event.data === undefined) return [];
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      throw new UpstreamProtocolError(
        `an SSE event's data is not JSON: ${truncate(raw)}`,
      );
    }
    if (!isRecord(data)) {
      throw new UpstreamProtocolError(
        `an SSE event's data is not an object: ${truncate(raw)}`,
      );
    }

    const type = data['type'];
    switch (type) {
      case 'message_start':
        return this.#messageStart(data);
      case 'content_block_start':
        return this.#blockStart(data);
      case 'content_block_delta':
        return this.#blockDelta(data);
      case 'content_block_stop':
        return this.#blockStop(data);
      case 'message_delta':
        return this.#messageDelta(data);
      case 'message_stop':
        this.#requireStarted(type);
        this.#stopped = true;
        return [];
      case 'error':
        return [
          {
            type: 'error',
            error: anthropicStreamErrorInfo(object(data, 'error', type)),
          },
        ];
    }
    // `ping`, and event types newer than this code: Anthropic asks
    // clients to ignore what they do not know.
    return [];
  }

  #messageStart(data: Json): CanonicalStreamEvent[] {
    if (this.#startUsage !== undefined) {
      throw new UpstreamProtocolError('a second message_start in one stream');
    }
    const message = object(data, 'message', 'message_start');
    const usage = object(message, 'usage', 'message_start.message');
    this.#startUsage = usage;
    return [
      {
        type: 'message_start',
        id: string(message, 'id', 'message_start.message'),
        model: string(message, 'model', 'message_start.message'),
      },
      {
        type: 'usage',
        usage: normalizeAnthropicUsage(usage),
        raw: usage,
        final: false,
      },
    ];
  }

  #blockStart(data: Json): CanonicalStreamEvent[] {
    this.#requireStarted('content_block_start');
    const at = blockIndex(data, 'content_block_start');
    if (this.#blocks.has(at)) {
      throw new UpstreamProtocolError(`content block ${at} started twice`);
    }
    const block = object(data, 'content_block', 'content_block_start');
    const type = block['type'];
    if (type !== 'text' && type !== 'thinking' && type !== 'tool_use') {
      this.#blocks.set(at, { kind: 'untranslatable' });
      this.#untranslatable.push(
        new UntranslatableError(
          `content block ${at} is of type ${JSON.stringify(type)}, which ` +
            "cannot be expressed in the client's API",
        ),
      );
      return [];
    }

    const index = this.#nextIndex++;
    this.#blocks.set(at, { kind: type, index });
    const where = 'content_block_start.content_block';
    switch (type) {
      case 'text': {
        const text = string(block, 'text', where);
        return [
          { type: 'block_start', index, block: { type } },
          ...(text === ''
            ? []
            : [{ type: 'text_delta', index, text } as const]),
        ];
      }
      case 'thinking': {
        const text = string(block, 'thinking', where);
        const signature = optionalString(block, 'signature', where);
        return [
          { type: 'block_start', index, block: { type } },
          ...(text === ''
            ? []
            : [{ type: 'thinking_delta', index, text } as const]),
          ...(signature === ''
            ? []
            : [{ type: 'signature_delta', index, signature } as const]),
        ];
      }
      case 'tool_use': {
        const input = object(block, 'input', where);
        const toolUse = {
          type: 'tool_use' as const,
          id: string(block, 'id', where),
          name: string(block, 'name', where),
        };
        // The arguments normally follow as `input_json_delta`s, with `{}`
        // here; arguments given up front become one delta.
        return [
          { type: 'block_start', index, block: toolUse },
          ...(Object.keys(input).length === 0
            ? []
            : [
                {
                  type: 'tool_input_delta',
                  index,
                  json: JSON.stringify(input),
                } as const,
              ]),
        ];
      }
    }
  }

  #blockDelta(data: Json): CanonicalStreamEvent[] {
    const at = blockIndex(data, 'content_block_delta');
    const block = this.#openBlock(at, 'content_block_delta');
    if (block.kind === 'untranslatable') return [];
    const delta = object(data, 'delta', 'content_block_delta');
    const deltaType = delta['type'];
    const shape =
      typeof deltaType === 'string' && Object.hasOwn(DELTA_TYPES, deltaType)
        ? DELTA_TYPES[deltaType as keyof typeof DELTA_TYPES]
        : undefined;
    if (shape === undefined) {
      // Citations, and delta types newer than this code.
      this.#untranslatable.push(
        new UntranslatableError(
          `content block ${at} has a delta of type ` +
            `${JSON.stringify(deltaType)}, which cannot be expressed in ` +
            "the client's API",
        ),
      );
      return [];
    }
    if (shape.block !== block.kind) {
      throw new UpstreamProtocolError(
        `a ${String(deltaType)} for content block ${at}, a ${block.kind} block`,
      );
    }

    const value = string(delta, shape.field, 'content_block_delta.delta');
    const index = block.index;
    switch (deltaType as keyof typeof DELTA_TYPES) {
      case 'text_delta':
        return [{ type: 'text_delta', index, text: value }];
      case 'thinking_delta':
        return [{ type: 'thinking_delta', index, text: value }];
      case 'signature_delta':
        return [{ type: 'signature_delta', index, signature: value }];
      case 'input_json_delta':
        return [{ type: 'tool_input_delta', index, json: value }];
    }
  }

  #blockStop(data: Json): CanonicalStreamEvent[] {
    const at = blockIndex(data, 'content_block_stop');
    const block = this.#openBlock(at, 'content_block_stop');
    // The index stays taken: Anthropic never reuses one in a message.
    this.#closed.add(at);
    return block.kind === 'untranslatable'
      ? []
      : [{ type: 'block_stop', index: block.index }];
  }

  #messageDelta(data: Json): CanonicalStreamEvent[] {
    const startUsage = this.#requireStarted('message_delta');
    const delta = object(data, 'delta', 'message_delta');
    const usage = mergeAnthropicStreamUsage(
      startUsage,
      object(data, 'usage', 'message_delta'),
    );
    const stopSequence = delta['stop_sequence'] ?? null;
    return [
      {
        type: 'message_stop',
        stopReason: canonicalStopReason(delta['stop_reason']),
        stopSequence: typeof stopSequence === 'string' ? stopSequence : null,
      },
      {
        type: 'usage',
        usage: normalizeAnthropicUsage(usage),
        raw: usage,
        final: true,
      },
    ];
  }

  #requireStarted(type: string): Json {
    if (this.#startUsage === undefined) {
      throw new UpstreamProtocolError(`${type} before message_start`);
    }
    return this.#startUsage;
  }

  #openBlock(at: number, type: string): OpenBlock {
    this.#requireStarted(type);
    const block = this.#blocks.get(at);
    if (block === undefined || this.#closed.has(at)) {
      throw new UpstreamProtocolError(
        `${type} for content block ${at}, which is not open`,
      );
    }
    return block;
  }
}

function blockIndex(data: Json, where: string): number {
  const index = data['index'];
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) {
    throw new UpstreamProtocolError(`${where} has no valid block index`);
  }
  return index;
}

function object(data: Json, field: string, where: string): Json {
  const value = data[field];
  if (!isRecord(value)) {
    throw new UpstreamProtocolError(`${where}.${field} is not an object`);
  }
  return value;
}

function string(data: Json, field: string, where: string): string {
  const value = data[field];
  if (typeof value !== 'string') {
    throw new UpstreamProtocolError(`${where}.${field} is not a string`);
  }
  return value;
}

function optionalString(data: Json, field: string, where: string): string {
  return data[field] === undefined ? '' : string(data, field, where);
}

function truncate(raw: Buffer): string {
  const text = raw.toString('utf8');
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

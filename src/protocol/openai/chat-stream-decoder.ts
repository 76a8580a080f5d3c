/**
 * A Chat Completions event stream → canonical events, one SSE event at a
 * time, each frame keeping its exact bytes for a same-API pass-through.
 *
 * Blocks open in the order the content arrives and one is open at a time,
 * as in Anthropic's streams: text deltas share a text block; each tool
 * call (by its `index` in `tool_calls`) gets its own block, opened by the
 * delta that names it. The `finish_reason` closes the open block and
 * stops the message; the usage chunk (`choices: []`) is the final usage.
 * `data: [DONE]` and comments carry no events.
 *
 * Only the first choice is followed; see decode-chat-response.ts.
 *
 * @see https://platform.openai.com/docs/api-reference/chat-streaming
 */
import {
  UpstreamProtocolError,
  type CanonicalStreamEvent,
  type DecodedFrame,
  type StreamDecoder,
} from '../canonical.js';
import { isRecord } from '../../metering/usage.js';
import { normalizeOpenAIChatUsage } from '../../providers/openai/normalize-chat-usage.js';
import { SseSplitter, type SseEvent } from '../../providers/sse-splitter.js';
import { canonicalStopReason } from './chat-finish-reason.js';
import { streamErrorInfo } from './openai-error.js';

type Fields = Readonly<Record<string, unknown>>;

export class ChatStreamDecoder implements StreamDecoder {
  readonly #splitter = new SseSplitter();
  #started = false;
  #nextBlock = 0;
  /** The open block: its index and what it holds. */
  #open: { index: number; kind: 'text' | 'thinking' | number } | null = null;
  /** Tool call index → block index, for every tool call seen. */
  readonly #toolBlocks = new Map<number, number>();

  push(chunk: Buffer | Readonly<Record<string, unknown>>): DecodedFrame[] {
    if (!Buffer.isBuffer(chunk)) {
      throw new UpstreamProtocolError('Chat Completions streams bytes');
    }
    return this.#splitter.push(chunk).map((event) => this.#frame(event));
  }

  end(): DecodedFrame[] {
    // A cut-off event is not an event: the stream simply ended early, and
    // the gateway estimates what it cannot read.
    return [];
  }

  #frame(sse: SseEvent): DecodedFrame {
    const data = sse.data;
    if (data === undefined || data === '[DONE]') {
      return { raw: sse.raw, events: [] };
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      throw new UpstreamProtocolError('a stream chunk is not JSON');
    }
    if (!isRecord(chunk)) {
      throw new UpstreamProtocolError('a stream chunk is not an object');
    }
    return { raw: sse.raw, events: this.#events(chunk) };
  }

  #events(chunk: Fields): CanonicalStreamEvent[] {
    if (chunk['error'] !== undefined && chunk['error'] !== null) {
      return [{ type: 'error', error: streamErrorInfo(chunk['error']) }];
    }
    const events: CanonicalStreamEvent[] = [];
    const choices = chunk['choices'];
    if (!Array.isArray(choices)) {
      throw new UpstreamProtocolError('a stream chunk has no choices array');
    }
    const choice = (choices as unknown[]).find(
      (entry) => isRecord(entry) && (entry['index'] ?? 0) === 0,
    );
    // Azure opens with a chunk of prompt filter results: no id, no choices.
    if (isRecord(choice)) {
      this.#start(chunk, events);
      this.#choice(choice, events);
    }

    const usage = chunk['usage'];
    if (usage !== undefined && usage !== null) {
      this.#start(chunk, events);
      events.push({
        type: 'usage',
        usage: normalizeOpenAIChatUsage(usage),
        raw: usage,
        final: true,
      });
    }
    return events;
  }

  #start(chunk: Fields, events: CanonicalStreamEvent[]): void {
    if (this.#started) return;
    this.#started = true;
    events.push({
      type: 'message_start',
      id: typeof chunk['id'] === 'string' ? chunk['id'] : '',
      model: typeof chunk['model'] === 'string' ? chunk['model'] : '',
    });
  }

  #choice(choice: Fields, events: CanonicalStreamEvent[]): void {
    const delta = isRecord(choice['delta']) ? choice['delta'] : {};

    const reasoning = delta['reasoning_content'];
    if (typeof reasoning === 'string' && reasoning !== '') {
      const index = this.#openBlock('thinking', events);
      events.push({ type: 'thinking_delta', index, text: reasoning });
    }
    for (const field of ['content', 'refusal']) {
      const text = delta[field];
      if (typeof text === 'string' && text !== '') {
        const index = this.#openBlock('text', events);
        events.push({ type: 'text_delta', index, text });
      }
    }
    const toolCalls = delta['tool_calls'];
    if (Array.isArray(toolCalls)) {
      for (const call of toolCalls as unknown[]) this.#toolCall(call, events);
    }

    const finishReason = choice['finish_reason'];
    if (typeof finishReason === 'string') {
      this.#close(events);
      events.push({
        type: 'message_stop',
        stopReason: canonicalStopReason(finishReason),
        stopSequence: null,
      });
    }
  }

  #toolCall(call: unknown, events: CanonicalStreamEvent[]): void {
    if (!isRecord(call) || typeof call['index'] !== 'number') {
      throw new UpstreamProtocolError('a tool call delta has no index');
    }
    const toolIndex = call['index'];
    const fn = isRecord(call['function']) ? call['function'] : {};
    let index = this.#toolBlocks.get(toolIndex);

    if (index === undefined) {
      const id = call['id'];
      const name = fn['name'];
      if (typeof id !== 'string' || typeof name !== 'string') {
        throw new UpstreamProtocolError(
          `tool call ${toolIndex} starts without its id and name`,
        );
      }
      this.#close(events);
      index = this.#nextBlock++;
      this.#toolBlocks.set(toolIndex, index);
      this.#open = { index, kind: toolIndex };
      events.push({
        type: 'block_start',
        index,
        block: { type: 'tool_use', id, name },
      });
    } else if (this.#open?.index !== index) {
      // OpenAI streams tool calls one after the other; a late fragment
      // would belong to a block that has been closed.
      throw new UpstreamProtocolError(
        `tool call ${toolIndex} continued after the next one started`,
      );
    }

    const json = fn['arguments'];
    if (typeof json === 'string' && json !== '') {
      events.push({ type: 'tool_input_delta', index, json });
    }
  }

  /** The open block of this kind, opening one (and closing another). */
  #openBlock(kind: 'text' | 'thinking', events: CanonicalStreamEvent[]) {
    if (this.#open?.kind === kind) return this.#open.index;
    this.#close(events);
    const index = this.#nextBlock++;
    this.#open = { index, kind };
    events.push({ type: 'block_start', index, block: { type: kind } });
    return index;
  }

  #close(events: CanonicalStreamEvent[]): void {
    if (this.#open === null) return;
    events.push({ type: 'block_stop', index: this.#open.index });
    this.#open = null;
  }
}

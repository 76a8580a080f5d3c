/**
 * A Responses API event stream → canonical events, one SSE event at a
 * time, each frame keeping its exact bytes for a same-API pass-through.
 *
 * Each content part of a message (output text or refusal) is a text
 * block, each function call a tool block, each reasoning summary part (or
 * raw reasoning text) a thinking block; blocks open with their `added`
 * event and close with their `done` event, or with their item's
 * `output_item.done`. `response.completed` and `response.incomplete` stop
 * the message and carry the final usage; `error` and `response.failed`
 * report an error, with any usage the failed response still reports.
 *
 * Custom and hosted tool calls carry no events; see
 * decode-responses-response.ts.
 *
 * @see https://platform.openai.com/docs/api-reference/responses-streaming
 */
import {
  UpstreamProtocolError,
  type CanonicalStreamEvent,
  type DecodedFrame,
  type StreamDecoder,
} from '../canonical.js';
import { isRecord } from '../../metering/usage.js';
import { normalizeOpenAIResponsesUsage } from '../../providers/openai/normalize-responses-usage.js';
import { SseSplitter, type SseEvent } from '../../providers/sse-splitter.js';
import { responsesStopReason } from './decode-responses-response.js';
import { streamErrorInfo } from './openai-error.js';

type Fields = Readonly<Record<string, unknown>>;
type Events = CanonicalStreamEvent[];

export class ResponsesStreamDecoder implements StreamDecoder {
  readonly #splitter = new SseSplitter();
  #nextBlock = 0;
  /** Open blocks by a key naming their item and part. */
  readonly #open = new Map<string, number>();
  #calledTools = false;

  push(chunk: Buffer | Readonly<Record<string, unknown>>): DecodedFrame[] {
    if (!Buffer.isBuffer(chunk)) {
      throw new UpstreamProtocolError('the Responses API streams bytes');
    }
    return this.#splitter.push(chunk).map((event) => this.#frame(event));
  }

  end(): DecodedFrame[] {
    return [];
  }

  #frame(sse: SseEvent): DecodedFrame {
    if (sse.data === undefined) return { raw: sse.raw, events: [] };
    let data: unknown;
    try {
      data = JSON.parse(sse.data);
    } catch {
      throw new UpstreamProtocolError('a stream event is not JSON');
    }
    if (!isRecord(data)) {
      throw new UpstreamProtocolError('a stream event is not an object');
    }
    const type = typeof data['type'] === 'string' ? data['type'] : sse.event;
    if (type === undefined) {
      throw new UpstreamProtocolError('a stream event has no type');
    }
    const events: Events = [];
    this.#event(type, data, events);
    return { raw: sse.raw, events };
  }

  #event(type: string, data: Fields, events: Events): void {
    const at = key(data);
    switch (type) {
      case 'response.created': {
        const response = record(data['response']);
        events.push({
          type: 'message_start',
          id: stringOf(response['id']),
          model: stringOf(response['model']),
        });
        return;
      }
      case 'response.content_part.added': {
        const part = record(data['part']);
        if (part['type'] === 'reasoning_text') {
          this.#start(`${at}/r`, { type: 'thinking' }, events);
        } else {
          this.#start(`${at}/c`, { type: 'text' }, events);
        }
        return;
      }
      case 'response.output_text.delta':
      case 'response.refusal.delta': {
        const index = this.#start(`${at}/c`, { type: 'text' }, events);
        const text = stringOf(data['delta']);
        if (text !== '') events.push({ type: 'text_delta', index, text });
        return;
      }
      case 'response.content_part.done':
        this.#stop(`${at}/c`, events);
        this.#stop(`${at}/r`, events);
        return;
      case 'response.output_item.added': {
        const item = record(data['item']);
        if (item['type'] !== 'function_call') return;
        const id = item['call_id'];
        const name = item['name'];
        if (typeof id !== 'string' || typeof name !== 'string') {
          throw new UpstreamProtocolError(
            'a function call starts without its call_id and name',
          );
        }
        this.#calledTools = true;
        this.#start(
          `${outputIndex(data)}/f`,
          { type: 'tool_use', id, name },
          events,
        );
        return;
      }
      case 'response.function_call_arguments.delta': {
        const index = this.#open.get(`${outputIndex(data)}/f`);
        if (index === undefined) {
          throw new UpstreamProtocolError(
            'function call arguments arrived before their item',
          );
        }
        const json = stringOf(data['delta']);
        if (json !== '') events.push({ type: 'tool_input_delta', index, json });
        return;
      }
      case 'response.output_item.done':
        this.#stopItem(outputIndex(data), events);
        return;
      case 'response.reasoning_summary_part.added':
        this.#start(summaryKey(data), { type: 'thinking' }, events);
        return;
      case 'response.reasoning_summary_text.delta':
      case 'response.reasoning_text.delta': {
        const blockKey =
          type === 'response.reasoning_text.delta'
            ? `${at}/r`
            : summaryKey(data);
        const index = this.#start(blockKey, { type: 'thinking' }, events);
        const text = stringOf(data['delta']);
        if (text !== '') events.push({ type: 'thinking_delta', index, text });
        return;
      }
      case 'response.reasoning_summary_part.done':
        this.#stop(summaryKey(data), events);
        return;
      case 'response.completed':
      case 'response.incomplete':
        this.#finish(record(data['response']), events);
        return;
      case 'response.failed': {
        const response = record(data['response']);
        this.#stopAll(events);
        events.push({
          type: 'error',
          error: streamErrorInfo(response['error']),
        });
        this.#usage(response, events);
        return;
      }
      case 'error':
        // Newer streams nest the error; older ones spread it at the top.
        events.push({
          type: 'error',
          error: streamErrorInfo(
            isRecord(data['error']) ? data['error'] : data,
          ),
        });
        return;
    }
  }

  #finish(response: Fields, events: Events): void {
    this.#stopAll(events);
    events.push({
      type: 'message_stop',
      stopReason: responsesStopReason(response, this.#calledTools),
      stopSequence: null,
    });
    this.#usage(response, events);
  }

  #usage(response: Fields, events: Events): void {
    const usage = response['usage'];
    if (usage === undefined || usage === null) return;
    events.push({
      type: 'usage',
      usage: normalizeOpenAIResponsesUsage(usage, response['tool_usage']),
      raw: usage,
      final: true,
    });
  }

  /** The block for a key, opened now if it is not open yet. */
  #start(
    blockKey: string,
    block: Extract<CanonicalStreamEvent, { type: 'block_start' }>['block'],
    events: Events,
  ): number {
    const open = this.#open.get(blockKey);
    if (open !== undefined) return open;
    const index = this.#nextBlock++;
    this.#open.set(blockKey, index);
    events.push({ type: 'block_start', index, block });
    return index;
  }

  #stop(blockKey: string, events: Events): void {
    const index = this.#open.get(blockKey);
    if (index === undefined) return;
    this.#open.delete(blockKey);
    events.push({ type: 'block_stop', index });
  }

  #stopItem(output: number, events: Events): void {
    for (const blockKey of [...this.#open.keys()]) {
      if (blockKey.startsWith(`${output}/`)) this.#stop(blockKey, events);
    }
  }

  #stopAll(events: Events): void {
    for (const blockKey of [...this.#open.keys()]) this.#stop(blockKey, events);
  }
}

function record(value: unknown): Fields {
  return isRecord(value) ? value : {};
}

function stringOf(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function outputIndex(data: Fields): number {
  const index = data['output_index'];
  if (typeof index !== 'number') {
    throw new UpstreamProtocolError('a stream event has no output_index');
  }
  return index;
}

/** `<output_index>/<content_index>`: a content part of an item. */
function key(data: Fields): string {
  const content = data['content_index'];
  if (typeof data['output_index'] !== 'number') return '';
  return `${outputIndex(data)}/${typeof content === 'number' ? content : 0}`;
}

function summaryKey(data: Fields): string {
  const summary = data['summary_index'];
  return `${outputIndex(data)}/s${typeof summary === 'number' ? summary : 0}`;
}

/**
 * Reads a streamed answer the way a client does, in each provider's wire
 * format, to tell when its first text arrives: the first complete event
 * that carries a non-empty text delta. It reads to the end too, so that a
 * stream that failed or stopped short does not count as a sample.
 */
import { EventStreamSplitter } from '../src/protocol/bedrock/event-stream-frames.js';
import { SseSplitter } from '../src/providers/sse-splitter.js';

export type WireFormat = 'openai-chat' | 'anthropic-messages' | 'bedrock';

export interface StreamReader {
  /** Feeds bytes as they arrive. */
  push(chunk: Uint8Array): void;
  /** A complete event with a non-empty text delta has been read. */
  readonly sawText: boolean;
  /** The stream's last event has been read. */
  readonly complete: boolean;
  /** The stream's error event, if it sent one. */
  readonly error: string | undefined;
}

export function streamReader(format: WireFormat): StreamReader {
  switch (format) {
    case 'openai-chat':
      return new SseReader(openAIChatEvent);
    case 'anthropic-messages':
      return new SseReader(anthropicEvent);
    case 'bedrock':
      return new BedrockReader();
  }
}

/** What one event says, as far as the reader cares. */
interface EventMeaning {
  readonly text?: boolean;
  readonly last?: boolean;
  readonly error?: string;
}

class SseReader implements StreamReader {
  sawText = false;
  complete = false;
  error: string | undefined;
  readonly #splitter = new SseSplitter();
  readonly #meaning: (data: string) => EventMeaning;

  constructor(meaning: (data: string) => EventMeaning) {
    this.#meaning = meaning;
  }

  push(chunk: Uint8Array): void {
    for (const event of this.#splitter.push(Buffer.from(chunk))) {
      if (event.data === undefined) continue;
      const meaning = this.#meaning(event.data);
      this.sawText ||= meaning.text === true;
      this.complete ||= meaning.last === true;
      this.error ??= meaning.error;
    }
  }
}

function openAIChatEvent(data: string): EventMeaning {
  if (data === '[DONE]') return { last: true };
  const chunk = JSON.parse(data) as {
    choices?: { delta?: { content?: unknown } }[];
    error?: { message?: string };
  };
  if (chunk.error) return { error: chunk.error.message ?? data };
  const content = chunk.choices?.[0]?.delta?.content;
  return { text: typeof content === 'string' && content !== '' };
}

function anthropicEvent(data: string): EventMeaning {
  const event = JSON.parse(data) as {
    type?: string;
    delta?: { type?: string; text?: unknown };
    error?: { message?: string };
  };
  if (event.type === 'content_block_delta') {
    const text = event.delta?.type === 'text_delta' ? event.delta.text : '';
    return { text: typeof text === 'string' && text !== '' };
  }
  if (event.type === 'message_stop') return { last: true };
  if (event.type === 'error') return { error: event.error?.message ?? data };
  return {};
}

/** ConverseStream: binary event-stream messages; usage (`metadata`) last. */
class BedrockReader implements StreamReader {
  sawText = false;
  complete = false;
  error: string | undefined;
  readonly #splitter = new EventStreamSplitter();

  push(chunk: Uint8Array): void {
    for (const message of this.#splitter.push(chunk)) {
      if (message.kind !== 'event') {
        this.error ??=
          message.kind === 'error' ? message.message : message.type;
        continue;
      }
      if (message.type === 'metadata') this.complete = true;
      if (message.type !== 'contentBlockDelta') continue;
      const text = (message.payload as { delta?: { text?: unknown } }).delta
        ?.text;
      this.sawText ||= typeof text === 'string' && text !== '';
    }
  }
}

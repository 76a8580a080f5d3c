/**
 * Splits a `text/event-stream` byte stream into whole events, keeping each
 * event's exact bytes so the gateway can forward it unchanged.
 *
 * General SSE parsers hand back decoded fields and drop the framing; a
 * proxy that must pass events through byte for byte, and hold back or drop
 * one (OpenAI's usage chunk), needs the raw bytes of every event too.
 * Lines end in CRLF, LF or CR, and an empty line ends an event, as the
 * HTML standard defines.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */

export interface SseEvent {
  /** The event's bytes, terminating blank line included. */
  readonly raw: Buffer;
  /** The `event:` field, if any. */
  readonly event: string | undefined;
  /** The `data:` lines joined by `\n`; undefined when the event has none. */
  readonly data: string | undefined;
}

const LF = 0x0a;
const CR = 0x0d;

/** Thrown when one event grows past the splitter's limit. */
export class SseEventTooLargeError extends Error {
  override readonly name = 'SseEventTooLargeError';
}

/** No real provider sends an event anywhere near this large. */
const DEFAULT_MAX_EVENT_BYTES = 32 * 1024 * 1024;

export class SseSplitter {
  /**
   * Bytes of an event not yet complete, in a buffer that doubles as it
   * fills, so a large event costs linear time, not a copy per chunk.
   */
  #buffer: Buffer = Buffer.alloc(0);
  #length = 0;
  /** Offset in the pending bytes where the unscanned ones start. */
  #scanned = 0;
  /** Offset where the current line starts. */
  #lineStart = 0;
  /** A CR ended the previous chunk; an LF opening the next one belongs to it. */
  #skipLeadingLf = false;
  readonly #maxEventBytes: number;

  constructor(options: { maxEventBytes?: number } = {}) {
    this.#maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  }

  /** Feeds bytes; returns the events they complete, in order. */
  push(chunk: Buffer): SseEvent[] {
    let bytes = chunk;
    if (this.#skipLeadingLf && bytes.length > 0) {
      this.#skipLeadingLf = false;
      if (bytes[0] === LF) {
        // The LF completes a CRLF whose CR was already counted as a line
        // end; keep it in the raw bytes but do not count a second line.
        this.#append(bytes.subarray(0, 1));
        this.#scanned = this.#length;
        this.#lineStart = this.#length;
        bytes = bytes.subarray(1);
      }
    }

    // With nothing pending, scan the chunk itself and copy only its tail.
    const owned = this.#length > 0;
    if (owned) this.#append(bytes);
    const buffer = owned ? this.#buffer.subarray(0, this.#length) : bytes;

    const events: SseEvent[] = [];
    let eventStart = 0;
    let i = this.#scanned;
    while (i < buffer.length) {
      const byte = buffer[i];
      if (byte !== LF && byte !== CR) {
        i++;
        continue;
      }
      const lineEnd = i;
      let next = i + 1;
      if (byte === CR) {
        if (next < buffer.length) {
          if (buffer[next] === LF) next++;
        } else {
          this.#skipLeadingLf = true;
        }
      }
      if (lineEnd === this.#lineStart) {
        // An empty line: the event is complete. Bytes in our own buffer
        // are copied out, as the buffer is reused.
        const view = buffer.subarray(eventStart, next);
        events.push(parseEvent(owned ? Buffer.from(view) : view));
        eventStart = next;
      }
      this.#lineStart = next;
      i = next;
    }

    const rest = buffer.length - eventStart;
    if (owned) {
      this.#buffer.copyWithin(0, eventStart, this.#length);
      this.#length = rest;
    } else {
      this.#length = 0;
      this.#append(buffer.subarray(eventStart));
    }
    this.#scanned = this.#length;
    this.#lineStart -= eventStart;
    if (this.#length > this.#maxEventBytes) {
      throw new SseEventTooLargeError(
        `an SSE event grew past ${this.#maxEventBytes} bytes`,
      );
    }
    return events;
  }

  /** Bytes received after the last complete event (a cut-off stream). */
  rest(): Buffer {
    return Buffer.from(this.#buffer.subarray(0, this.#length));
  }

  #append(bytes: Buffer): void {
    const needed = this.#length + bytes.length;
    if (needed > this.#buffer.length) {
      const grown = Buffer.allocUnsafe(
        Math.max(needed, this.#buffer.length * 2, 4096),
      );
      this.#buffer.copy(grown, 0, 0, this.#length);
      this.#buffer = grown;
    }
    bytes.copy(this.#buffer, this.#length);
    this.#length = needed;
  }
}

function parseEvent(raw: Buffer): SseEvent {
  let event: string | undefined;
  let data: string[] | undefined;
  for (const line of raw.toString('utf8').split(/\r\n|\r|\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') (data ??= []).push(value);
    else if (field === 'event') event = value;
  }
  return { raw, event, data: data?.join('\n') };
}

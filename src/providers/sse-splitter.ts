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

export class SseSplitter {
  #pending: Buffer = Buffer.alloc(0);
  /** Offset in `#pending` where the unscanned bytes start. */
  #scanned = 0;
  /** Offset where the current line starts. */
  #lineStart = 0;
  /** A CR ended the previous chunk; an LF opening the next one belongs to it. */
  #skipLeadingLf = false;

  /** Feeds bytes; returns the events they complete, in order. */
  push(chunk: Buffer): SseEvent[] {
    let bytes = chunk;
    if (this.#skipLeadingLf && bytes.length > 0) {
      this.#skipLeadingLf = false;
      if (bytes[0] === LF) {
        // The LF completes a CRLF whose CR was already counted as a line
        // end; keep it in the raw bytes but do not count a second line.
        this.#pending = Buffer.concat([this.#pending, bytes.subarray(0, 1)]);
        this.#scanned = this.#pending.length;
        this.#lineStart = this.#pending.length;
        bytes = bytes.subarray(1);
      }
    }
    this.#pending =
      this.#pending.length === 0
        ? bytes
        : Buffer.concat([this.#pending, bytes]);

    const events: SseEvent[] = [];
    let eventStart = 0;
    const buffer = this.#pending;
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
        // An empty line: the event is complete.
        const raw = buffer.subarray(eventStart, next);
        events.push(parseEvent(raw));
        eventStart = next;
      }
      this.#lineStart = next;
      i = next;
    }

    this.#pending = buffer.subarray(eventStart);
    this.#scanned = this.#pending.length;
    this.#lineStart -= eventStart;
    return events;
  }

  /** Bytes received after the last complete event (a cut-off stream). */
  rest(): Buffer {
    return this.#pending;
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

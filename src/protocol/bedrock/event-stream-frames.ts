/**
 * The binary `application/vnd.amazon.eventstream` framing of
 * ConverseStream, both ways.
 *
 * Each message is a prelude (total length, headers length, CRC), typed
 * headers, a payload and a CRC. ConverseStream sends three kinds, told
 * apart by the `:message-type` header:
 *
 * - `event`, named by `:event-type` (`messageStart`, `contentBlockDelta`,
 *   …), whose payload is the JSON of that event;
 * - `exception`, named by `:exception-type` (`throttlingException`, …),
 *   whose payload is `{"message": …}`;
 * - `error`, an unmodelled failure with `:error-code` and `:error-message`
 *   headers.
 *
 * Both sides of the gateway and the fake upstream use these helpers, so
 * the frames they write are the frames the AWS SDK reads.
 *
 * @see https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html
 */
import { EventStreamCodec, type Message } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';

import { UpstreamProtocolError } from '../canonical.js';

export const EVENT_STREAM_CONTENT_TYPE = 'application/vnd.amazon.eventstream';

const codec = new EventStreamCodec(toUtf8, fromUtf8);

/** Prelude (8 bytes) and its CRC (4): enough to read a message's length. */
const PRELUDE_BYTES = 12;
/** Prelude, prelude CRC and message CRC: a message with no headers or body. */
const MIN_MESSAGE_BYTES = 16;
/** Bedrock's frames are small; this bounds what a corrupt length can cost. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** One ConverseStream member as the AWS SDK surfaces it: `{ name: payload }`. */
export type EventObject = Readonly<Record<string, unknown>>;

/** A decoded message, by kind, with the bytes it came in. */
export type StreamMessage = (
  | { readonly kind: 'event'; readonly type: string; readonly payload: unknown }
  | {
      readonly kind: 'exception';
      readonly type: string;
      readonly payload: unknown;
    }
  | { readonly kind: 'error'; readonly code: string; readonly message: string }
) & { readonly bytes: Buffer };

/** Encodes one event message, JSON payload included. */
export function encodeEventFrame(eventType: string, payload: unknown): Buffer {
  return encodeFrame(
    {
      ':event-type': eventType,
      ':content-type': 'application/json',
      ':message-type': 'event',
    },
    payload,
  );
}

/** Encodes one modelled exception, as Bedrock ends a failing stream. */
export function encodeExceptionFrame(
  exceptionType: string,
  payload: unknown,
): Buffer {
  return encodeFrame(
    {
      ':exception-type': exceptionType,
      ':content-type': 'application/json',
      ':message-type': 'exception',
    },
    payload,
  );
}

/**
 * Encodes a message with string headers, in the order given (Bedrock's
 * order is `:event-type`, `:content-type`, `:message-type`).
 */
export function encodeFrame(
  headers: Readonly<Record<string, string>>,
  payload: unknown,
): Buffer {
  const typed: Message['headers'] = {};
  for (const [name, value] of Object.entries(headers)) {
    typed[name] = { type: 'string', value };
  }
  const body = fromUtf8(JSON.stringify(payload, blobsAsBase64));
  const bytes = codec.encode({ headers: typed, body });
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The member an event object carries: its one key that is not `$unknown`
 * (the AWS SDK's marker for members it does not model).
 */
export function eventMember(
  event: EventObject,
): { readonly type: string; readonly payload: unknown } | undefined {
  for (const [type, payload] of Object.entries(event)) {
    if (type !== '$unknown' && payload !== undefined) return { type, payload };
  }
  return undefined;
}

/** Encodes an event object: an exception member as an exception frame. */
export function encodeEventObject(event: EventObject): Buffer {
  const member = eventMember(event);
  if (member === undefined) {
    throw new UpstreamProtocolError('a ConverseStream event has no member');
  }
  return isExceptionMember(member.type)
    ? encodeExceptionFrame(member.type, member.payload)
    : encodeEventFrame(member.type, member.payload);
}

/** ConverseStream's exception members all end so: `throttlingException`. */
export function isExceptionMember(type: string): boolean {
  return type.endsWith('Exception');
}

/**
 * Splits event-stream bytes that arrive at arbitrary boundaries into
 * whole messages, checking each message's CRCs.
 */
export class EventStreamSplitter {
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  /** Bytes held that do not yet make a whole message. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Feeds bytes; returns every message they complete, in order. */
  push(chunk: Uint8Array): StreamMessage[] {
    if (chunk.byteLength === 0) return [];
    this.#pending.push(Buffer.from(chunk));
    this.#pendingBytes += chunk.byteLength;

    const messages: StreamMessage[] = [];
    let buffer = this.#joined();
    while (buffer.byteLength >= PRELUDE_BYTES) {
      const length = buffer.readUInt32BE(0);
      if (length < MIN_MESSAGE_BYTES || length > MAX_MESSAGE_BYTES) {
        throw new UpstreamProtocolError(
          `event-stream message length ${length} is out of bounds`,
        );
      }
      if (buffer.byteLength < length) break;
      messages.push(decodeMessage(buffer.subarray(0, length)));
      buffer = buffer.subarray(length);
    }
    this.#pending = buffer.byteLength > 0 ? [buffer] : [];
    this.#pendingBytes = buffer.byteLength;
    return messages;
  }

  #joined(): Buffer {
    if (this.#pending.length === 1) return this.#pending[0] as Buffer;
    const joined = Buffer.concat(this.#pending);
    this.#pending = [joined];
    return joined;
  }
}

function decodeMessage(bytes: Buffer): StreamMessage {
  let message: Message;
  try {
    message = codec.decode(bytes);
  } catch (error) {
    throw new UpstreamProtocolError(
      `event-stream message is corrupt: ${(error as Error).message}`,
    );
  }
  const header = (name: string): string | undefined => {
    const value = message.headers[name];
    return value?.type === 'string' ? value.value : undefined;
  };

  const messageType = header(':message-type');
  if (messageType === 'error') {
    return {
      kind: 'error',
      code: header(':error-code') ?? 'UnknownError',
      message: header(':error-message') ?? '',
      bytes,
    };
  }
  const type =
    messageType === 'event'
      ? header(':event-type')
      : messageType === 'exception'
        ? header(':exception-type')
        : undefined;
  if (type === undefined) {
    throw new UpstreamProtocolError(
      `event-stream message of type ${String(messageType)} lacks its name`,
    );
  }
  return {
    kind: messageType === 'event' ? 'event' : 'exception',
    type,
    payload: parsePayload(message.body, type),
    bytes,
  };
}

function parsePayload(body: Uint8Array, type: string): unknown {
  if (body.byteLength === 0) return {};
  try {
    return JSON.parse(toUtf8(body)) as unknown;
  } catch {
    throw new UpstreamProtocolError(`${type} event payload is not JSON`);
  }
}

/**
 * JSON replacer that writes bytes as base64, the way Bedrock's REST JSON
 * carries blobs (image bytes, redacted reasoning). It looks at the value
 * before `toJSON`, since a Buffer's `toJSON` runs before any replacer.
 */
export function blobsAsBase64(
  this: unknown,
  key: string,
  value: unknown,
): unknown {
  const original =
    typeof this === 'object' && this !== null
      ? (this as Record<string, unknown>)[key]
      : value;
  if (original instanceof Uint8Array) {
    return Buffer.from(
      original.buffer,
      original.byteOffset,
      original.byteLength,
    ).toString('base64');
  }
  return value;
}

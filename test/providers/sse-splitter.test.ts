/**
 * The SSE splitter against the recorded provider streams in
 * `../shared/data/wire`, cut every way a network can cut them.
 *
 * Two references are written here, independently of the module, each
 * parsing the whole buffer at once:
 *
 * - `referenceFraming` finds each event's exact bytes: lines end in CRLF,
 *   LF or CR, and an empty line closes the event;
 * - `referenceMessages` is the WHATWG "interpret an event stream"
 *   algorithm, step by step, and yields the (type, data) pairs a browser's
 *   `EventSource` would dispatch.
 *
 * However the bytes arrive, the splitter must return the same events with
 * the same bytes (one case aside, which `expectedBytes` explains), and its
 * `raw` bytes plus `rest()` must be the input, exactly.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
import { readdirSync, readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  SseSplitter,
  type SseEvent,
} from '../../src/providers/sse-splitter.js';
import { sharedDataPresent, sharedFile } from '../helpers/shared-data.js';
import { seededRandom } from '../../src/util/seeded-random.js';

// ---------------------------------------------------------------------------
// References: whole-buffer parses written from the standard.

interface Framing {
  /** Offset just past each event's closing empty line. */
  readonly ends: number[];
}

/** Finds where each event of a whole stream ends. */
function referenceFraming(bytes: Buffer): Framing {
  // latin1 maps each byte to one character, so offsets stay byte offsets.
  const text = bytes.toString('latin1');
  const ends: number[] = [];
  let lineStart = 0;
  for (const end of text.matchAll(/\r\n|\r|\n/g)) {
    const empty = end.index === lineStart;
    lineStart = end.index + end[0].length;
    if (empty) ends.push(lineStart);
  }
  return { ends };
}

/**
 * Each event's bytes, and the bytes after the last, for a stream fed in
 * pieces that start at `cuts`.
 *
 * One case depends on the cuts. An event is released the moment its empty
 * line ends, without waiting for more bytes; when that empty line ends in
 * a CR that closes a piece, whether an LF follows (CRLF) is not yet known.
 * That LF then opens the next event's bytes (or `rest()`), where it reads
 * as nothing; together the bytes are still the input, exactly.
 */
function expectedBytes(
  bytes: Buffer,
  { ends }: Framing,
  cuts: ReadonlySet<number>,
): { raws: Buffer[]; rest: Buffer } {
  const raws: Buffer[] = [];
  let start = 0;
  for (const end of ends) {
    const crlfCut =
      bytes[end - 2] === 0x0d && bytes[end - 1] === 0x0a && cuts.has(end - 1);
    const released = crlfCut ? end - 1 : end;
    raws.push(bytes.subarray(start, released));
    start = released;
  }
  return { raws, rest: bytes.subarray(start) };
}

interface Message {
  readonly type: string;
  readonly data: string;
}

/** The WHATWG event stream interpretation, for the events it dispatches. */
function referenceMessages(bytes: Buffer): Message[] {
  const text = new TextDecoder('utf-8').decode(bytes); // drops a BOM
  const lines = text.split(/\r\n|\r|\n/);
  lines.pop(); // the last piece has no line end: never processed
  const messages: Message[] = [];
  let data = '';
  let type = '';
  for (const line of lines) {
    if (line === '') {
      // Dispatch: nothing without data; drop the data's final LF.
      if (data !== '') {
        messages.push({ type: type || 'message', data: data.slice(0, -1) });
      }
      data = '';
      type = '';
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data += `${value}\n`;
    if (field === 'event') type = value;
  }
  return messages;
}

/** What the splitter's events amount to, read as an `EventSource` would. */
function dispatchedBy(events: readonly SseEvent[]): Message[] {
  return events
    .filter((event) => event.data !== undefined)
    .map((event) => ({ type: event.event || 'message', data: event.data! }));
}

// ---------------------------------------------------------------------------
// Feeding the splitter.

interface Split {
  readonly events: SseEvent[];
  readonly rest: Buffer;
}

function feed(pieces: readonly Buffer[]): Split {
  const splitter = new SseSplitter();
  const events: SseEvent[] = [];
  for (const piece of pieces) events.push(...splitter.push(piece));
  return { events, rest: splitter.rest() };
}

function twoPieces(bytes: Buffer, at: number): Buffer[] {
  return [bytes.subarray(0, at), bytes.subarray(at)];
}

function piecesOf(bytes: Buffer, sizes: () => number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const size = sizes();
    pieces.push(bytes.subarray(at, at + size));
    at += size;
  }
  return pieces;
}

/** The offsets at which pieces start. */
function cutsOf(pieces: readonly Buffer[]): Set<number> {
  const cuts = new Set<number>();
  let at = 0;
  for (const piece of pieces) {
    cuts.add(at);
    at += piece.length;
  }
  return cuts;
}

/** Chunk sizes from 1 to `max`, seeded, so a failure can be replayed. */
function seededSizes(seed: number, max: number): () => number {
  const random = seededRandom(seed);
  return () => 1 + Math.floor(random() * max);
}

interface Expected {
  readonly bytes: Buffer;
  readonly framing: Framing;
  readonly messages: Message[];
}

function expectedFor(bytes: Buffer): Expected {
  return {
    bytes,
    framing: referenceFraming(bytes),
    messages: referenceMessages(bytes),
  };
}

/**
 * How a split differs from the references, or `undefined` when it does
 * not. Written out by hand so that thousands of splits stay fast.
 */
function mismatch(
  pieces: readonly Buffer[],
  expected: Expected,
): string | undefined {
  const split = feed(pieces);
  const joined = Buffer.concat([...split.events.map((e) => e.raw), split.rest]);
  if (!joined.equals(expected.bytes)) {
    return 'raw bytes plus rest() are not the input';
  }
  const { raws, rest } = expectedBytes(
    expected.bytes,
    expected.framing,
    cutsOf(pieces),
  );
  if (split.events.length !== raws.length) {
    return `${split.events.length} events, expected ${raws.length}`;
  }
  for (const [i, event] of split.events.entries()) {
    if (!event.raw.equals(raws[i]!)) {
      return (
        `event ${i} raw ${JSON.stringify(event.raw.toString('latin1'))}, ` +
        `expected ${JSON.stringify(raws[i]!.toString('latin1'))}`
      );
    }
  }
  if (!split.rest.equals(rest)) return 'rest() differs';
  const messages = dispatchedBy(split.events);
  if (messages.length !== expected.messages.length) {
    return `${messages.length} messages, expected ${expected.messages.length}`;
  }
  for (const [i, message] of messages.entries()) {
    const want = expected.messages[i]!;
    if (message.type !== want.type || message.data !== want.data) {
      return `message ${i} is ${JSON.stringify(message)}, expected ${JSON.stringify(want)}`;
    }
  }
  return undefined;
}

/** Feeds `bytes` cut at every offset, as two pieces. */
function expectEveryCutLikeReference(bytes: Buffer): void {
  const expected = expectedFor(bytes);
  const failures: string[] = [];
  for (let at = 0; at <= bytes.length && failures.length < 5; at++) {
    const problem = mismatch(twoPieces(bytes, at), expected);
    if (problem) failures.push(`cut at ${at}: ${problem}`);
  }
  expect(failures).toEqual([]);
}

/** Feeds `bytes` in one piece, one byte at a time, and in seeded sizes. */
function expectChunkingsLikeReference(bytes: Buffer): void {
  const expected = expectedFor(bytes);
  const chunkings: [string, Buffer[]][] = [
    ['whole', [bytes]],
    ['1-byte', piecesOf(bytes, () => 1)],
  ];
  for (const seed of [1, 2, 3, 42, 2024]) {
    for (const max of [3, 17, 64, 512]) {
      chunkings.push([
        `seed ${seed}, up to ${max}`,
        piecesOf(bytes, seededSizes(seed, max)),
      ]);
    }
  }
  const failures = chunkings.flatMap(([label, pieces]) => {
    const problem = mismatch(pieces, expected);
    return problem ? [`${label}: ${problem}`] : [];
  });
  expect(failures).toEqual([]);
}

// ---------------------------------------------------------------------------
// Recordings and their variants.

/** Every `.sse` recording: OpenAI Chat and Anthropic Messages alike. */
const RECORDINGS = [
  'anthropic_messages_stream_thinking.sse',
  'openai_chat_stream_text_include-usage.sse',
  'openai_chat_stream_tool-call_include-usage.sse',
];

function recording(name: string): Buffer {
  return readFileSync(sharedFile(`wire/${name}`));
}

/** The recordings use LF only; these rewrite every line end. */
function withLineEnds(bytes: Buffer, end: '\r\n' | '\r'): Buffer {
  return Buffer.from(bytes.toString('latin1').replace(/\n/g, end), 'latin1');
}

/** Line ends cycling LF, CRLF, CR: all three in one stream. */
function withMixedLineEnds(bytes: Buffer): Buffer {
  const ends = ['\n', '\r\n', '\r'];
  let i = 0;
  return Buffer.from(
    bytes.toString('latin1').replace(/\n/g, () => ends[i++ % 3]!),
    'latin1',
  );
}

/**
 * Keep-alive comments as proxies and providers send them: a `: ping` event
 * before every event, and a comment line inside each.
 */
function withComments(bytes: Buffer): Buffer {
  const events = bytes.toString('latin1').split(/(?<=\n\n)/);
  return Buffer.from(
    events.map((event) => `: ping\n\n: keep-alive\n${event}`).join(''),
    'latin1',
  );
}

/**
 * Each `data:` JSON spread over several `data:` lines (pretty-printed), as
 * the standard allows: the lines rejoin with LF into the same JSON.
 */
function withMultiLineData(bytes: Buffer): Buffer {
  const text = bytes.toString('utf8').replace(/^data: (\{.*)$/gm, (_, json) =>
    JSON.stringify(JSON.parse(json as string), null, 2)
      .split('\n')
      .map((line) => `data: ${line}`)
      .join('\n'),
  );
  return Buffer.from(text, 'utf8');
}

describe.skipIf(!sharedDataPresent)('SSE splitter on recorded streams', () => {
  it('covers every .sse recording', () => {
    const names = readdirSync(sharedFile('wire')).filter((name) =>
      name.endsWith('.sse'),
    );
    expect(names.sort()).toEqual(RECORDINGS);
  });

  it.each(RECORDINGS)('%s: the references agree on it', (name) => {
    // The references are the yardstick, so check them against the file:
    // LF only, every event closed, one message per event, JSON data.
    const bytes = recording(name);
    expect(bytes.includes(0x0d)).toBe(false);
    const { ends } = referenceFraming(bytes);
    const messages = referenceMessages(bytes);
    expect(ends.at(-1)).toBe(bytes.length);
    expect(ends.length).toBe(bytes.toString('latin1').split('\n\n').length - 1);
    expect(messages.length).toBe(ends.length);
    for (const { data } of messages) {
      if (data !== '[DONE]')
        expect(() => JSON.parse(data) as unknown).not.toThrow();
    }
    if (name.startsWith('openai_chat_')) {
      expect(messages.at(-1)).toEqual({ type: 'message', data: '[DONE]' });
    } else {
      expect(messages.at(-1)?.type).toBe('message_stop');
    }
  });

  it.each(RECORDINGS)('%s: cut at every byte', (name) => {
    expectEveryCutLikeReference(recording(name));
  });

  it.each(RECORDINGS)('%s: whole, 1-byte and seeded chunks', (name) => {
    expectChunkingsLikeReference(recording(name));
  });

  const OPENAI = RECORDINGS.filter((name) => name.startsWith('openai_'));

  it.each(OPENAI)('%s with CRLF line ends: cut at every byte', (name) => {
    expectEveryCutLikeReference(withLineEnds(recording(name), '\r\n'));
  });

  it.each(OPENAI)('%s with CR line ends: cut at every byte', (name) => {
    expectEveryCutLikeReference(withLineEnds(recording(name), '\r'));
  });

  it.each(OPENAI)('%s with mixed line ends: cut at every byte', (name) => {
    expectEveryCutLikeReference(withMixedLineEnds(recording(name)));
  });

  it.each(OPENAI)('%s with comments: cut at every byte', (name) => {
    expectEveryCutLikeReference(withComments(recording(name)));
  });

  it.each(OPENAI)('%s with multi-line data: cut at every byte', (name) => {
    expectEveryCutLikeReference(withMultiLineData(recording(name)));
  });

  it.each<[string, (bytes: Buffer) => Buffer]>([
    ['CRLF', (bytes) => withLineEnds(bytes, '\r\n')],
    ['CR', (bytes) => withLineEnds(bytes, '\r')],
    ['mixed line ends', withMixedLineEnds],
    ['comments', withComments],
    ['multi-line data', withMultiLineData],
    ['comments and CRLF', (bytes) => withLineEnds(withComments(bytes), '\r\n')],
  ])('every recording with %s: chunked every way', (_label, transform) => {
    for (const name of RECORDINGS) {
      expectChunkingsLikeReference(transform(recording(name)));
    }
  });

  it('rebuilds the recorded JSON from multi-line data', () => {
    const name = 'openai_chat_stream_tool-call_include-usage.sse';
    const original = feed([recording(name)]).events.map((e) => e.data);
    const spread = feed(
      piecesOf(withMultiLineData(recording(name)), seededSizes(7, 40)),
    ).events.map((e) => e.data);
    expect(spread.length).toBe(original.length);
    expect(spread.at(-1)).toBe('[DONE]');
    spread.slice(0, -1).forEach((data, i) => {
      expect(data).toContain('\n');
      expect(JSON.parse(data!)).toEqual(JSON.parse(original[i]!));
    });
  });
});

// ---------------------------------------------------------------------------
// Hand-written streams for the corners the recordings do not reach.

describe('SSE splitter corners', () => {
  const utf8 = (text: string) => Buffer.from(text, 'utf8');

  it('takes a CR closing a piece and the LF opening the next as one line end', () => {
    // Inside an event: the CRLF after "data: a" is one line end, not two,
    // so it does not end the event early.
    const inside = feed([utf8('data: a\r'), utf8('\ndata: b\r\n\r\n')]);
    expect(inside.events.map((e) => [e.data, e.raw.toString()])).toEqual([
      ['a\nb', 'data: a\r\ndata: b\r\n\r\n'],
    ]);
    expect(inside.rest.length).toBe(0);

    // At the empty line: the event goes out at the CR; the LF then opens
    // the next event's bytes, and adds no event of its own.
    const closing = feed([utf8('data: a\r\n\r'), utf8('\ndata: b\r\n\r\n')]);
    expect(closing.events.map((e) => [e.data, e.raw.toString()])).toEqual([
      ['a', 'data: a\r\n\r'],
      ['b', '\ndata: b\r\n\r\n'],
    ]);
    expect(closing.rest.length).toBe(0);

    // And at the very end of the stream, the LF waits in rest().
    const last = feed([utf8('data: [DONE]\r\n\r'), utf8('\n')]);
    expect(last.events.map((e) => e.data)).toEqual(['[DONE]']);
    expect(last.rest.toString()).toBe('\n');
  });

  it('still ends a line at a CR whose next piece is not an LF', () => {
    const { events } = feed([
      utf8('data: a\r'),
      utf8('\rdata: b\r'),
      utf8('\r'),
    ]);
    expect(events.map((e) => [e.data, e.raw.toString()])).toEqual([
      ['a', 'data: a\r\r'],
      ['b', 'data: b\r\r'],
    ]);
  });

  it('reads fields as the standard does', () => {
    const stream = utf8(
      [
        'data', // no colon: an empty data line
        'data:x', // no space after the colon
        'data:  two', // only one space is removed
        'id: 7', // ignored fields
        'retry: 1000',
        'unknown: field',
        'event: named',
        '',
        'event: only-a-type', // no data: nothing to dispatch
        '',
        'data:', // one empty data line: dispatched, data ''
        '',
        ': a comment alone',
        '',
        'event:', // an empty type is "message"
        'data: {"a":1}',
        '',
        '',
        'data: after a stray empty line',
        '',
        '',
      ].join('\n'),
    );
    const { events } = feed([stream]);
    expect(events.map((e) => [e.event, e.data])).toEqual([
      ['named', '\nx\n two'],
      ['only-a-type', undefined],
      [undefined, ''],
      [undefined, undefined],
      ['', '{"a":1}'],
      [undefined, undefined],
      [undefined, 'after a stray empty line'],
    ]);
    expectEveryCutLikeReference(stream);
    expectEveryCutLikeReference(withLineEnds(stream, '\r\n'));
    expectEveryCutLikeReference(withLineEnds(stream, '\r'));
  });

  it('keeps multi-byte characters whole across pieces', () => {
    // é is 2 bytes, 🌍 is 4: every cut inside them must still decode.
    const stream = utf8('event: grüße\ndata: café 🌍\ndata: 日本\n\n');
    expect(feed(piecesOf(stream, () => 1)).events).toMatchObject([
      { event: 'grüße', data: 'café 🌍\n日本' },
    ]);
    expectEveryCutLikeReference(stream);
  });

  it('holds an unfinished event in rest() and emits nothing for it', () => {
    const closed = 'data: {"a":1}\n\n';
    const open = 'data: {"b":2}\n';
    const splitter = new SseSplitter();
    expect(splitter.push(utf8(closed + open))).toHaveLength(1);
    expect(splitter.rest().toString()).toBe(open);
    expect(splitter.push(Buffer.alloc(0))).toEqual([]);
    expect(splitter.rest().toString()).toBe(open);
    expect(splitter.push(utf8('\n')).map((e) => e.data)).toEqual(['{"b":2}']);
    expect(splitter.rest().length).toBe(0);
  });
});

/**
 * The Anthropic stream decoder: recorded streams decoded into the events
 * read from the files by hand, the same frames whatever the byte boundaries,
 * raw bytes kept exactly, server-tool blocks set aside as untranslatable,
 * and malformed streams refused.
 */
import { describe, expect, it } from 'vitest';

import {
  UpstreamProtocolError,
  type DecodedFrame,
} from '../../../src/protocol/canonical.js';
import { AnthropicStreamDecoder } from '../../../src/protocol/anthropic/anthropic-stream-decoder.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import { streamBytes } from './anthropic-recordings.js';

const STREAMS = [
  'anthropic_messages_stream_text.chunks.jsonl',
  'anthropic_messages_stream_tool-use.chunks.jsonl',
  'anthropic_messages_stream_prompt-cache.chunks.jsonl',
  'anthropic_messages_stream_thinking.sse',
] as const;

/** Decodes `bytes` fed in pieces cut at `cuts` (sorted offsets). */
function decode(bytes: Buffer, cuts: readonly number[] = []): DecodedFrame[] {
  const decoder = new AnthropicStreamDecoder();
  const frames: DecodedFrame[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    frames.push(...decoder.push(bytes.subarray(from, cut)));
    from = cut;
  }
  frames.push(...decoder.end());
  return frames;
}

/** Frames as plain data, raw bytes as text, for deep comparison. */
function plain(frames: readonly DecodedFrame[]) {
  return frames.map((frame) => ({
    raw: (frame.raw as Buffer).toString('latin1'),
    events: frame.events,
  }));
}

/** One string per decoding, so thousands of cuts compare quickly. */
function fingerprint(frames: readonly DecodedFrame[]): string {
  return JSON.stringify(plain(frames));
}

/** The cut points at which decoding differs from decoding whole. */
function differingCuts(bytes: Buffer, cuts: Iterable<number>): number[] {
  const whole = fingerprint(decode(bytes));
  const differing: number[] = [];
  for (const cut of cuts) {
    if (fingerprint(decode(bytes, [cut])) !== whole) differing.push(cut);
  }
  return differing;
}

function events(frames: readonly DecodedFrame[]) {
  return frames.flatMap((frame) => frame.events);
}

function sse(...events: [string, unknown][]): Buffer {
  return Buffer.from(
    events
      .map(
        ([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`,
      )
      .join(''),
  );
}

describe.skipIf(!sharedDataPresent)('recorded Anthropic streams', () => {
  it('decodes the text stream into the events the file holds', () => {
    const frames = decode(streamBytes(STREAMS[0]));
    // 12 lines: message_start … ping … message_stop, one frame each.
    expect(frames).toHaveLength(12);
    expect(events(frames).filter((e) => e.type !== 'usage')).toEqual([
      {
        type: 'message_start',
        id: 'msg_01QC4g3HwBThD4BaNtBckFDJ',
        model: 'claude-sonnet-4-5-20250929',
      },
      { type: 'block_start', index: 0, block: { type: 'text' } },
      { type: 'text_delta', index: 0, text: 'Hello' },
      { type: 'text_delta', index: 0, text: '! I' },
      {
        type: 'text_delta',
        index: 0,
        text: "'m doing well, thank you for asking",
      },
      { type: 'text_delta', index: 0, text: '. How are you doing today?' },
      { type: 'text_delta', index: 0, text: ' Is' },
      {
        type: 'text_delta',
        index: 0,
        text: ' there anything I can help you with?',
      },
      { type: 'block_stop', index: 0 },
      { type: 'message_stop', stopReason: 'end_turn', stopSequence: null },
    ]);
  });

  it('decodes a tool call with its empty argument delta', () => {
    const toolEvents = events(decode(streamBytes(STREAMS[1]))).filter(
      (e) => 'index' in e && e.index === 1,
    );
    expect(toolEvents).toEqual([
      {
        type: 'block_start',
        index: 1,
        block: {
          type: 'tool_use',
          id: 'toolu_01QE1WLsSVp5hy5Q3GmGTmjP',
          name: 'updateIssueList',
        },
      },
      { type: 'tool_input_delta', index: 1, json: '' },
      { type: 'block_stop', index: 1 },
    ]);
  });

  it('decodes thinking, its signature and the text after it', () => {
    const all = events(decode(streamBytes(STREAMS[3])));
    const count = (type: string) => all.filter((e) => e.type === type).length;
    // grep of the file: 14 thinking_delta, 1 signature_delta, 95 text_delta.
    expect([
      count('thinking_delta'),
      count('signature_delta'),
      count('text_delta'),
    ]).toEqual([14, 1, 95]);
    expect(all.filter((e) => e.type === 'block_start')).toEqual([
      { type: 'block_start', index: 0, block: { type: 'thinking' } },
      { type: 'block_start', index: 1, block: { type: 'text' } },
    ]);
  });

  it('sets server-tool blocks aside and renumbers the rest from 0', () => {
    const decoder = new AnthropicStreamDecoder();
    const frames = [...decoder.push(streamBytes(STREAMS[2])), ...decoder.end()];
    // Blocks 0–3 are server_tool_use / bash_code_execution_tool_result.
    expect(decoder.sawUntranslatable).toBe(true);
    expect(decoder.untranslatable.map((error) => error.message)).toEqual([
      expect.stringContaining('"server_tool_use"'),
      expect.stringContaining('"bash_code_execution_tool_result"'),
      expect.stringContaining('"server_tool_use"'),
      expect.stringContaining('"bash_code_execution_tool_result"'),
    ]);
    expect(events(frames).filter((e) => e.type.startsWith('block'))).toEqual([
      { type: 'block_start', index: 0, block: { type: 'text' } },
      { type: 'block_stop', index: 0 },
    ]);
    expect(decoder.complete).toBe(true);
  });

  it('keeps every frame\u2019s exact bytes, and nothing else', () => {
    for (const name of STREAMS) {
      const bytes = streamBytes(name);
      const raw = Buffer.concat(decode(bytes).map((f) => f.raw as Buffer));
      expect(raw.equals(bytes), name).toBe(true);
    }
  });

  it.each(STREAMS.filter((name) => !name.endsWith('.sse')))(
    '%s decodes the same when split at every byte boundary',
    (name) => {
      const bytes = streamBytes(name);
      const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
      expect(differingCuts(bytes, cuts)).toEqual([]);
    },
  );

  it('decodes the 16 KB thinking stream the same at sampled cut points', () => {
    const bytes = streamBytes(STREAMS[3]);
    // Every 7th offset (a prime, so cuts fall at every position of the
    // repeating `event:`/`data:` framing), plus every offset of the first
    // and last 600 bytes, where message_start and message_delta sit.
    const cuts = new Set<number>();
    for (let cut = 1; cut < bytes.length; cut += 7) cuts.add(cut);
    for (let cut = 1; cut < 600; cut++) {
      cuts.add(cut);
      cuts.add(bytes.length - cut);
    }
    expect(differingCuts(bytes, cuts)).toEqual([]);
  });

  it('decodes the same when fed one byte at a time', () => {
    for (const name of STREAMS) {
      const bytes = streamBytes(name);
      const everyByte = Array.from(
        { length: bytes.length - 1 },
        (_, i) => i + 1,
      );
      expect(plain(decode(bytes, everyByte)), name).toEqual(
        plain(decode(bytes)),
      );
    }
  });
});

describe('AnthropicStreamDecoder', () => {
  const start = [
    'message_start',
    {
      type: 'message_start',
      message: {
        id: 'msg_1',
        model: 'claude-x',
        usage: { input_tokens: 3, output_tokens: 1 },
      },
    },
  ] as [string, unknown];

  it('passes pings, comments and unknown events through with no events', () => {
    const bytes = Buffer.concat([
      sse(start, ['ping', { type: 'ping' }], ['future', { type: 'future' }]),
      Buffer.from(': keep-alive\n\n'),
    ]);
    const frames = decode(bytes);
    expect(frames.map((f) => f.events.length)).toEqual([2, 0, 0, 0]);
  });

  it('turns an error event into an error with the status its type implies', () => {
    const frames = decode(
      sse(start, [
        'error',
        {
          type: 'error',
          error: { type: 'overloaded_error', message: 'Overloaded' },
        },
      ]),
    );
    expect(frames[1]?.events).toEqual([
      {
        type: 'error',
        error: {
          kind: 'overloaded',
          status: 529,
          message: 'Overloaded',
          retryAfter: null,
          upstreamCode: 'overloaded_error',
        },
      },
    ]);
  });

  it('emits the initial text of a block that starts with some', () => {
    const frames = decode(
      sse(start, [
        'content_block_start',
        {
          type: 'content_block_start',
          index: 0,
          content_block: { type: 'text', text: 'Hi' },
        },
      ]),
    );
    expect(frames[1]?.events).toEqual([
      { type: 'block_start', index: 0, block: { type: 'text' } },
      { type: 'text_delta', index: 0, text: 'Hi' },
    ]);
  });

  it('takes a last event that lacks its closing blank line', () => {
    const bytes = Buffer.from(
      `event: message_start\ndata: ${JSON.stringify(start[1])}\n`,
    );
    const frames = decode(bytes);
    expect(frames).toHaveLength(1);
    expect((frames[0]?.raw as Buffer).equals(bytes)).toBe(true);
  });

  it.each<[string, Buffer]>([
    ['data that is not JSON', Buffer.from('event: x\ndata: {oops\n\n')],
    [
      'a block before message_start',
      sse([
        'content_block_start',
        {
          type: 'content_block_start',
          index: 0,
          content_block: { type: 'text', text: '' },
        },
      ]),
    ],
    [
      'a delta for a block never started',
      sse(start, [
        'content_block_delta',
        {
          type: 'content_block_delta',
          index: 3,
          delta: { type: 'text_delta', text: 'x' },
        },
      ]),
    ],
    [
      'a text delta on a tool block',
      sse(
        start,
        [
          'content_block_start',
          {
            type: 'content_block_start',
            index: 0,
            content_block: { type: 'tool_use', id: 't', name: 'n', input: {} },
          },
        ],
        [
          'content_block_delta',
          {
            type: 'content_block_delta',
            index: 0,
            delta: { type: 'text_delta', text: 'x' },
          },
        ],
      ),
    ],
    ['a second message_start', sse(start, start)],
    [
      'a stream cut inside an event',
      Buffer.from('event: message_start\ndata: {"type":"mess'),
    ],
  ])('refuses %s with UpstreamProtocolError', (_label, bytes) => {
    expect(() => decode(bytes)).toThrow(UpstreamProtocolError);
  });
});

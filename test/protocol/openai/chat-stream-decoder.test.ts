/**
 * The Chat Completions stream decoder over the recorded streams: the
 * canonical events are written out by hand from each file, and must come
 * out the same however the bytes are cut, down to every byte boundary.
 * The frames' raw bytes must add up to the stream, byte for byte, since
 * a same-API client receives exactly those.
 */
import { describe, expect, it } from 'vitest';

import {
  UpstreamProtocolError,
  type CanonicalStreamEvent,
} from '../../../src/protocol/canonical.js';
import { ChatStreamDecoder } from '../../../src/protocol/openai/chat-stream-decoder.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import {
  decodeAt,
  eventsOf,
  textOf,
  usage,
  wireStream,
} from './openai-test-helpers.js';

const TOOL_CALL = 'openai_chat_stream_tool-call_include-usage.sse';
const TEXT = 'openai_chat_stream_text_include-usage.sse';

/** Written from openai_chat_stream_tool-call_include-usage.sse. */
const TOOL_CALL_EVENTS: CanonicalStreamEvent[] = [
  {
    type: 'message_start',
    id: 'chatcmpl-Dx0XpqH8w09uBXwq1zFGYdETjtnEl',
    model: 'gpt-4o-mini-2024-07-18',
  },
  {
    type: 'block_start',
    index: 0,
    block: {
      type: 'tool_use',
      id: 'call_ZR5UUuTt3pf61kjwAJIYdVMj',
      name: 'get_capital',
    },
  },
  // The first chunk's arguments are "", which is no delta.
  { type: 'tool_input_delta', index: 0, json: '{"' },
  { type: 'tool_input_delta', index: 0, json: 'country' },
  { type: 'tool_input_delta', index: 0, json: '":"' },
  { type: 'tool_input_delta', index: 0, json: 'UK' },
  { type: 'tool_input_delta', index: 0, json: '"}' },
  { type: 'block_stop', index: 0 },
  { type: 'message_stop', stopReason: 'tool_use', stopSequence: null },
  {
    type: 'usage',
    // prompt 53 (cached 0), completion 15: total 68.
    usage: usage({ inputTokens: 53, outputTokens: 15 }),
    raw: {
      prompt_tokens: 53,
      completion_tokens: 15,
      total_tokens: 68,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    },
    final: true,
  },
];

describe.skipIf(!sharedDataPresent)('ChatStreamDecoder on recordings', () => {
  it('decodes the tool-call stream into the events written by hand', () => {
    const frames = decodeAt(new ChatStreamDecoder(), wireStream(TOOL_CALL));
    expect(eventsOf(frames)).toEqual(TOOL_CALL_EVENTS);
    // 8 chunks and [DONE]: nine frames, the last without events.
    expect(frames).toHaveLength(9);
    expect(frames.at(-1)?.events).toEqual([]);
  });

  it('decodes the text stream: one text block, then the usage', () => {
    const events = eventsOf(
      decodeAt(new ChatStreamDecoder(), wireStream(TEXT)),
    );
    expect(textOf(events)).toBe('The capital of the UK is London.');
    expect(events.map((event) => event.type)).toEqual([
      'message_start',
      'block_start',
      ...Array<string>(8).fill('text_delta'),
      'block_stop',
      'message_stop',
      'usage',
    ]);
    expect(events.at(-1)).toMatchObject({
      // prompt 78, completion 9, total 87.
      usage: usage({ inputTokens: 78, outputTokens: 9 }),
      final: true,
    });
  });

  it.each([TOOL_CALL, TEXT])(
    '%s gives the same events and bytes cut at every byte boundary',
    (name) => {
      const bytes = wireStream(name);
      const whole = JSON.stringify(
        eventsOf(decodeAt(new ChatStreamDecoder(), bytes)),
      );
      // Compared as text and collected, so one failure lists every cut.
      const wrong: number[] = [];
      for (let cut = 1; cut < bytes.length; cut++) {
        const frames = decodeAt(new ChatStreamDecoder(), bytes, [cut]);
        const raw = Buffer.concat(frames.map((frame) => frame.raw as Buffer));
        if (JSON.stringify(eventsOf(frames)) !== whole || !raw.equals(bytes)) {
          wrong.push(cut);
        }
      }
      expect(wrong).toEqual([]);
      const everyByte = Array.from(
        { length: bytes.length - 1 },
        (_, i) => i + 1,
      );
      expect(
        JSON.stringify(
          eventsOf(decodeAt(new ChatStreamDecoder(), bytes, everyByte)),
        ),
      ).toBe(whole);
    },
  );

  it('decodes the 303-chunk text stream with one usage event', () => {
    const events = eventsOf(
      decodeAt(
        new ChatStreamDecoder(),
        wireStream('openai_chat_stream_text_include-usage.chunks.jsonl'),
      ),
    );
    expect(events.filter((event) => event.type === 'usage')).toEqual([
      expect.objectContaining({
        // Last line: prompt 16, completion 300, total 316.
        usage: usage({ inputTokens: 16, outputTokens: 300 }),
      }),
    ]);
    expect(events.filter((event) => event.type === 'block_start')).toHaveLength(
      1,
    );
  });
});

describe('ChatStreamDecoder', () => {
  const chunk = (fields: object) =>
    Buffer.from(
      `data: ${JSON.stringify({ id: 'c1', model: 'm', ...fields })}\n\n`,
    );

  it('opens a block per tool call, in the order they start', () => {
    const call = (index: number, fields: object) => ({
      choices: [{ index: 0, delta: { tool_calls: [{ index, ...fields }] } }],
    });
    const decoder = new ChatStreamDecoder();
    const events = eventsOf(
      [
        chunk({ choices: [{ index: 0, delta: { content: 'Hi' } }] }),
        chunk(call(0, { id: 'a', function: { name: 'f', arguments: '{}' } })),
        chunk(call(1, { id: 'b', function: { name: 'g', arguments: '' } })),
        chunk(call(1, { function: { arguments: '{"x":1}' } })),
        chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'length' }] }),
      ].map((bytes) => ({
        raw: bytes,
        events: decoder.push(bytes).flatMap((f) => f.events),
      })),
    );
    expect(events).toEqual([
      { type: 'message_start', id: 'c1', model: 'm' },
      { type: 'block_start', index: 0, block: { type: 'text' } },
      { type: 'text_delta', index: 0, text: 'Hi' },
      { type: 'block_stop', index: 0 },
      {
        type: 'block_start',
        index: 1,
        block: { type: 'tool_use', id: 'a', name: 'f' },
      },
      { type: 'tool_input_delta', index: 1, json: '{}' },
      { type: 'block_stop', index: 1 },
      {
        type: 'block_start',
        index: 2,
        block: { type: 'tool_use', id: 'b', name: 'g' },
      },
      { type: 'tool_input_delta', index: 2, json: '{"x":1}' },
      { type: 'block_stop', index: 2 },
      { type: 'message_stop', stopReason: 'max_tokens', stopSequence: null },
    ]);
  });

  it('reports an error object in the stream as an error event', () => {
    const events = new ChatStreamDecoder()
      .push(
        Buffer.from(
          'data: {"error":{"message":"boom","type":"server_error","code":null}}\n\n',
        ),
      )
      .flatMap((frame) => frame.events);
    expect(events).toEqual([
      {
        type: 'error',
        error: {
          kind: 'server',
          status: 500,
          message: 'boom',
          retryAfter: null,
          upstreamCode: 'server_error',
        },
      },
    ]);
  });

  it.each([
    ['a chunk that is not JSON', 'data: {nope\n\n'],
    ['a chunk without choices', 'data: {"id":"x"}\n\n'],
    [
      'a tool call that starts without its id',
      'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}\n\n',
    ],
  ])('throws UpstreamProtocolError on %s', (_label, text) => {
    expect(() => new ChatStreamDecoder().push(Buffer.from(text))).toThrow(
      UpstreamProtocolError,
    );
  });

  it('passes comments and [DONE] through without events', () => {
    const frames = new ChatStreamDecoder().push(
      Buffer.from(': keep-alive\n\ndata: [DONE]\n\n'),
    );
    expect(frames.map((frame) => frame.events)).toEqual([[], []]);
    expect(frames.map((frame) => (frame.raw as Buffer).toString())).toEqual([
      ': keep-alive\n\n',
      'data: [DONE]\n\n',
    ]);
  });
});

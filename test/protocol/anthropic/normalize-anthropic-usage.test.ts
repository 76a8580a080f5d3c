/**
 * Anthropic usage, normalised: every recorded Anthropic answer in
 * `../shared/data/wire` (non-streamed through `decodeResponse`, streamed
 * through the stream decoder), with the expected counts worked out by hand
 * from each file, and the normaliser's and merger's rules one by one.
 *
 * Anthropic counts cache reads and writes *outside* `input_tokens`, so
 * nothing is subtracted: each field lands in its own class.
 */
import { describe, expect, it } from 'vitest';

import type { CanonicalStreamEvent } from '../../../src/protocol/canonical.js';
import {
  UsageParseError,
  type NormalizedUsage,
} from '../../../src/metering/usage.js';
import { anthropicUpstream } from '../../../src/protocol/anthropic/anthropic-upstream.js';
import {
  mergeAnthropicStreamUsage,
  normalizeAnthropicUsage,
} from '../../../src/providers/anthropic/normalize-anthropic-usage.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import {
  anthropicAnswerFiles,
  isStreamRecording,
  recordingJson,
  streamBytes,
} from './anthropic-recordings.js';

function usage(
  counts: Partial<Omit<NormalizedUsage, 'units'>> & {
    units?: Record<string, number>;
  },
): NormalizedUsage {
  return {
    inputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    outputTokens: 0,
    reasoningTokens: 0,
    units: {},
    ...counts,
  };
}

interface Expectation {
  readonly read: string;
  /** `message_start`'s provisional usage; streams only. */
  readonly provisional?: NormalizedUsage;
  readonly final: NormalizedUsage;
}

/** One row per Anthropic answer recording; a new file without one fails. */
const EXPECTED: Readonly<Record<string, Expectation>> = {
  'anthropic_messages_nonstream_text.json': {
    read: 'input 12, cache write 0 (5m 0, 1h 0), cache read 0, output 29',
    final: usage({ inputTokens: 12, outputTokens: 29 }),
  },
  'anthropic_messages_nonstream_tool-use.json': {
    read: 'input 602, cache write 0, cache read 0, output 93',
    final: usage({ inputTokens: 602, outputTokens: 93 }),
  },
  'anthropic_messages_nonstream_prompt-cache-write.response.json': {
    read: 'input 2, cache write 1590 (5m 1590 + 1h 0), read 0, output 4',
    // 2 uncached + 1590 written at 5m = 1592 prompt tokens, each once.
    final: usage({ inputTokens: 2, cacheWriteTokens: 1590, outputTokens: 4 }),
  },
  'anthropic_messages_nonstream_prompt-cache-read.response.json': {
    read: 'input 2, cache write 0, cache read 1590, output 4',
    // 2 uncached + 1590 read = the same 1592 prompt tokens as the write.
    final: usage({ inputTokens: 2, cacheReadTokens: 1590, outputTokens: 4 }),
  },
  'anthropic_messages_stream_text.chunks.jsonl': {
    read: 'start: input 12, output 1; delta: input 12, output 30',
    provisional: usage({ inputTokens: 12, outputTokens: 1 }),
    final: usage({ inputTokens: 12, outputTokens: 30 }),
  },
  'anthropic_messages_stream_tool-use.chunks.jsonl': {
    read: 'start: input 565, output 7; delta: input 565, output 48',
    provisional: usage({ inputTokens: 565, outputTokens: 7 }),
    final: usage({ inputTokens: 565, outputTokens: 48 }),
  },
  'anthropic_messages_stream_prompt-cache.chunks.jsonl': {
    read:
      'start: input 2, cache write 3068 (5m), output 69; delta: input 6, ' +
      'cache write 3337, cache read 6289, output 198, web searches 0',
    provisional: usage({
      inputTokens: 2,
      cacheWriteTokens: 3068,
      outputTokens: 69,
    }),
    // The delta's cumulative counts win. It has no cache_creation
    // breakdown; the start's had 0 one-hour writes, so all 3337 are 5m.
    // server_tool_use counts 0 web searches and 0 fetches: no units.
    final: usage({
      inputTokens: 6,
      cacheReadTokens: 6289,
      cacheWriteTokens: 3337,
      outputTokens: 198,
    }),
  },
  'anthropic_messages_stream_thinking.sse': {
    read: 'start: input 43, output 1; delta: input 43, output 282',
    provisional: usage({ inputTokens: 43, outputTokens: 1 }),
    // Thinking is inside the 282 output tokens; no separate count.
    final: usage({ inputTokens: 43, outputTokens: 282 }),
  },
};

function usageEvents(name: string) {
  const decoder = anthropicUpstream.createStreamDecoder();
  const events: CanonicalStreamEvent[] = [
    ...decoder.push(streamBytes(name)),
    ...decoder.end(),
  ].flatMap((frame) => frame.events);
  return events.filter((event) => event.type === 'usage');
}

describe.skipIf(!sharedDataPresent)('recorded Anthropic usage', () => {
  it('has an expectation for every Anthropic answer recording', () => {
    expect(anthropicAnswerFiles()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(
    Object.entries(EXPECTED)
      .filter(([name]) => !isStreamRecording(name))
      .map(([name, e]) => [name, e.read, e.final] as const),
  )('%s (%s) through decodeResponse', (name, _read, final) => {
    const response = anthropicUpstream.decodeResponse(recordingJson(name));
    expect(response.usage).toEqual(final);
    expect(response.rawUsage).toEqual(
      (recordingJson(name) as { usage: unknown }).usage,
    );
  });

  it.each(
    Object.entries(EXPECTED)
      .filter(([name]) => isStreamRecording(name))
      .map(([name, e]) => [name, e.read, e] as const),
  )('%s (%s) through the stream decoder', (name, _read, expected) => {
    const events = usageEvents(name);
    expect(events.map((event) => [event.final, event.usage])).toEqual([
      [false, expected.provisional],
      [true, expected.final],
    ]);
  });
});

describe('normalizeAnthropicUsage', () => {
  it('reads an old block with no cache fields at all', () => {
    expect(
      normalizeAnthropicUsage({ input_tokens: 9, output_tokens: 3 }),
    ).toEqual(usage({ inputTokens: 9, outputTokens: 3 }));
  });

  it('takes all cache writes as 5-minute ones without a breakdown', () => {
    expect(
      normalizeAnthropicUsage({
        input_tokens: 1,
        cache_creation_input_tokens: 500,
        output_tokens: 2,
      }),
    ).toEqual(
      usage({ inputTokens: 1, cacheWriteTokens: 500, outputTokens: 2 }),
    );
  });

  it('splits cache writes by lifetime', () => {
    // 700 written = 300 at 5m + 400 at 1h.
    expect(
      normalizeAnthropicUsage({
        input_tokens: 5,
        cache_creation_input_tokens: 700,
        cache_read_input_tokens: 100,
        cache_creation: {
          ephemeral_5m_input_tokens: 300,
          ephemeral_1h_input_tokens: 400,
        },
        output_tokens: 8,
      }),
    ).toEqual(
      usage({
        inputTokens: 5,
        cacheReadTokens: 100,
        cacheWriteTokens: 300,
        cacheWrite1hTokens: 400,
        outputTokens: 8,
      }),
    );
  });

  it('names every non-zero server tool counter as a unit', () => {
    expect(
      normalizeAnthropicUsage({
        input_tokens: 10,
        output_tokens: 20,
        server_tool_use: { web_search_requests: 3, web_fetch_requests: 0 },
      }),
    ).toEqual(
      usage({
        inputTokens: 10,
        outputTokens: 20,
        units: { web_search_requests: 3 },
      }),
    );
  });

  it('reads the thinking share where the block reports it', () => {
    expect(
      normalizeAnthropicUsage({
        input_tokens: 10,
        output_tokens: 20,
        output_tokens_details: { thinking_tokens: 12 },
      }),
    ).toEqual(
      usage({ inputTokens: 10, outputTokens: 20, reasoningTokens: 12 }),
    );
  });

  const valid = {
    input_tokens: 2,
    cache_creation_input_tokens: 1590,
    cache_read_input_tokens: 0,
    cache_creation: {
      ephemeral_5m_input_tokens: 1590,
      ephemeral_1h_input_tokens: 0,
    },
    output_tokens: 4,
  };

  it.each<[string, unknown]>([
    ['a null block', null],
    ['an array', [valid]],
    ['no input_tokens', { ...valid, input_tokens: undefined }],
    ['no output_tokens', { ...valid, output_tokens: undefined }],
    ['a string count', { ...valid, input_tokens: '2' }],
    ['a negative count', { ...valid, cache_read_input_tokens: -1 }],
    ['a fractional count', { ...valid, output_tokens: 4.5 }],
    [
      // 1000 + 0 ≠ 1590: some written token would go unbilled.
      'cache_creation parts that do not sum to the total',
      {
        ...valid,
        cache_creation: {
          ephemeral_5m_input_tokens: 1000,
          ephemeral_1h_input_tokens: 0,
        },
      },
    ],
    [
      'a cache lifetime nobody prices',
      {
        ...valid,
        cache_creation: {
          ephemeral_5m_input_tokens: 1000,
          ephemeral_24h_input_tokens: 590,
        },
      },
    ],
    ['cache_creation that is not an object', { ...valid, cache_creation: 1 }],
    ['server_tool_use that is an array', { ...valid, server_tool_use: [1] }],
    [
      'a string server tool counter',
      { ...valid, server_tool_use: { web_search_requests: '1' } },
    ],
    [
      'thinking above the output',
      { ...valid, output_tokens_details: { thinking_tokens: 5 } },
    ],
  ])('throws UsageParseError on %s', (_label, raw) => {
    expect(() => normalizeAnthropicUsage(raw)).toThrow(UsageParseError);
  });

  it('normalises the valid block those cases are built from', () => {
    expect(normalizeAnthropicUsage(valid)).toEqual(
      usage({ inputTokens: 2, cacheWriteTokens: 1590, outputTokens: 4 }),
    );
  });
});

describe('mergeAnthropicStreamUsage', () => {
  const start = {
    input_tokens: 12,
    cache_creation_input_tokens: 100,
    cache_read_input_tokens: 50,
    cache_creation: {
      ephemeral_5m_input_tokens: 60,
      ephemeral_1h_input_tokens: 40,
    },
    output_tokens: 1,
  };

  it("keeps message_start's counts that an older delta leaves out", () => {
    const merged = mergeAnthropicStreamUsage(start, { output_tokens: 30 });
    expect(normalizeAnthropicUsage(merged)).toEqual(
      usage({
        inputTokens: 12,
        cacheReadTokens: 50,
        cacheWriteTokens: 60,
        cacheWrite1hTokens: 40,
        outputTokens: 30,
      }),
    );
  });

  it("lets a newer delta's cumulative counts win", () => {
    // Writes grew from 100 to 150; the 40 one-hour writes stay, and the
    // other 110 are 5-minute ones.
    const merged = mergeAnthropicStreamUsage(start, {
      input_tokens: 20,
      cache_creation_input_tokens: 150,
      cache_read_input_tokens: 70,
      output_tokens: 9,
    });
    expect(normalizeAnthropicUsage(merged)).toEqual(
      usage({
        inputTokens: 20,
        cacheReadTokens: 70,
        cacheWriteTokens: 110,
        cacheWrite1hTokens: 40,
        outputTokens: 9,
      }),
    );
  });

  it('ignores null fields in the delta', () => {
    const merged = mergeAnthropicStreamUsage(start, {
      input_tokens: null,
      output_tokens: 3,
    });
    expect(merged['input_tokens']).toBe(12);
  });

  it('refuses usage blocks that are not objects', () => {
    expect(() => mergeAnthropicStreamUsage(null, {})).toThrow(UsageParseError);
    expect(() => mergeAnthropicStreamUsage(start, 'x')).toThrow(
      UsageParseError,
    );
  });
});

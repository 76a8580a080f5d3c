/**
 * OpenAI Chat Completions usage, normalised, checked against every recorded
 * OpenAI and Azure OpenAI Chat response in `../shared/data/wire`.
 *
 * Each expected value is worked out by hand from the file it names, with the
 * arithmetic beside it. OpenAI counts cached tokens, cache writes and audio
 * tokens inside `prompt_tokens`, and reasoning tokens inside
 * `completion_tokens`; normalised usage puts every input token in exactly
 * one class (DESIGN.md, "Usage, exactly once").
 */
import { readdirSync, readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  UsageParseError,
  type NormalizedUsage,
} from '../../src/metering/usage.js';
import { normalizeOpenAIChatUsage } from '../../src/providers/openai/normalize-chat-usage.js';
import { sharedDataPresent, sharedFile } from '../helpers/shared-data.js';

/** Normalised usage with every class stated; units default to none. */
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
  /** The raw counts as they read in the file; names the test. */
  readonly read: string;
  readonly normalized: NormalizedUsage;
}

/**
 * One row per OpenAI Chat response recording. A recording added to the
 * folder without a row here fails the coverage test below.
 */
const EXPECTED: Readonly<Record<string, Expectation>> = {
  'openai_chat_nonstream_text.json': {
    read: 'prompt 16 (cached 0, audio 0); completion 363 (reasoning 0)',
    // 16 − 0 cached = 16 uncached; 363 output, none of it reasoning.
    normalized: usage({ inputTokens: 16, outputTokens: 363 }),
  },
  'openai_chat_nonstream_prompt-cache-write.response.json': {
    read: 'prompt 4020 (cache_write 4012, cached 0); completion 4; total 4024',
    // total 4024 = 4020 + 4, so the 4012 written sit inside the 4020:
    // 4020 − 4012 = 8 uncached input + 4012 cache write.
    normalized: usage({
      inputTokens: 8,
      cacheWriteTokens: 4012,
      outputTokens: 4,
    }),
  },
  'openai_chat_nonstream_prompt-cache-read.response.json': {
    read: 'prompt 4020 (cached 4012, cache_write 0); completion 4; total 4024',
    // 4020 − 4012 = 8 uncached input + 4012 cache read.
    normalized: usage({
      inputTokens: 8,
      cacheReadTokens: 4012,
      outputTokens: 4,
    }),
  },
  'openai_chat_stream_text_include-usage.chunks.jsonl': {
    read: 'last chunk: prompt 16 (cached 0); completion 300 (reasoning 0)',
    normalized: usage({ inputTokens: 16, outputTokens: 300 }),
  },
  'azure-openai_chat_stream_reasoning-tokens.chunks.jsonl': {
    read: 'last chunk: prompt 15 (cached 0); completion 78 (reasoning 64)',
    // Reasoning is billed as output: 78 output, of which 64 reasoning
    // (14 visible). total 93 = 15 + 78.
    normalized: usage({
      inputTokens: 15,
      outputTokens: 78,
      reasoningTokens: 64,
    }),
  },
  'openai_chat_stream_tool-call_include-usage.sse': {
    read: 'usage chunk: prompt 53 (cached 0); completion 15; total 68',
    normalized: usage({ inputTokens: 53, outputTokens: 15 }),
  },
  'openai_chat_stream_text_include-usage.sse': {
    read: 'usage chunk: prompt 78 (cached 0); completion 9; total 87',
    normalized: usage({ inputTokens: 78, outputTokens: 9 }),
  },
};

const WIRE = 'wire';

function isChatResponseRecording(name: string): boolean {
  return (
    /^(openai|azure-openai)_chat_/.test(name) && !name.endsWith('.request.json')
  );
}

function readText(name: string): string {
  return readFileSync(sharedFile(`${WIRE}/${name}`), 'utf8');
}

/** The JSON payloads of a stream recording, in order, `[DONE]` excluded. */
function streamPayloads(name: string): Record<string, unknown>[] {
  const text = readText(name);
  const payloads = name.endsWith('.sse')
    ? text
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice('data: '.length))
        .filter((data) => data !== '[DONE]')
    : text.split('\n').filter((line) => line !== '');
  return payloads.map((data) => JSON.parse(data) as Record<string, unknown>);
}

/** The usage block of a recording, read the way a client would. */
function recordedUsage(name: string): unknown {
  if (name.endsWith('.json')) {
    return (JSON.parse(readText(name)) as Record<string, unknown>)['usage'];
  }
  const withUsage = streamPayloads(name).filter(
    (chunk) => chunk['usage'] !== null && chunk['usage'] !== undefined,
  );
  return withUsage.at(-1)?.['usage'];
}

describe.skipIf(!sharedDataPresent)('recorded OpenAI Chat usage', () => {
  it('has an expectation for every OpenAI Chat response recording', () => {
    const recordings = readdirSync(sharedFile(WIRE))
      .filter(isChatResponseRecording)
      .sort();
    expect(recordings).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(
    Object.entries(EXPECTED).map(([name, e]) => [name, e.read, e.normalized]),
  )('%s (%s)', (name, _read, normalized) => {
    expect(normalizeOpenAIChatUsage(recordedUsage(name))).toEqual(normalized);
  });

  it.each(Object.keys(EXPECTED).filter((name) => !name.endsWith('.json')))(
    '%s carries usage only in its final, choice-less chunk',
    (name) => {
      const chunks = streamPayloads(name);
      const last = chunks.at(-1);
      expect(last?.['choices']).toEqual([]);
      expect(last?.['usage']).toBeTypeOf('object');
      for (const chunk of chunks.slice(0, -1)) {
        expect(chunk['usage'] ?? null).toBeNull();
      }
    },
  );
});

describe('normalizeOpenAIChatUsage', () => {
  it('takes null details, and null counts inside them, as absent', () => {
    expect(
      normalizeOpenAIChatUsage({
        prompt_tokens: 12,
        completion_tokens: 5,
        prompt_tokens_details: null,
        completion_tokens_details: null,
      }),
    ).toEqual(usage({ inputTokens: 12, outputTokens: 5 }));
    expect(
      normalizeOpenAIChatUsage({
        prompt_tokens: 12,
        completion_tokens: 5,
        prompt_tokens_details: { cached_tokens: null, audio_tokens: null },
        completion_tokens_details: { reasoning_tokens: null },
      }),
    ).toEqual(usage({ inputTokens: 12, outputTokens: 5 }));
  });

  it('reads a bare block, as OpenAI-compatible servers send it', () => {
    // vLLM, llama.cpp and Ollama omit the details objects entirely.
    expect(
      normalizeOpenAIChatUsage({
        prompt_tokens: 7,
        completion_tokens: 3,
        total_tokens: 10,
      }),
    ).toEqual(usage({ inputTokens: 7, outputTokens: 3 }));
  });

  it('splits cache reads and cache writes out of one prompt', () => {
    // 1000 prompt = 600 cached + 300 written + 100 uncached.
    expect(
      normalizeOpenAIChatUsage({
        prompt_tokens: 1000,
        completion_tokens: 20,
        prompt_tokens_details: { cached_tokens: 600, cache_write_tokens: 300 },
      }),
    ).toEqual(
      usage({
        inputTokens: 100,
        cacheReadTokens: 600,
        cacheWriteTokens: 300,
        outputTokens: 20,
      }),
    );
  });

  it('moves audio tokens out of the token classes into named units', () => {
    // 100 prompt − 30 audio = 70 text input; 50 completion − 20 audio = 30.
    expect(
      normalizeOpenAIChatUsage({
        prompt_tokens: 100,
        completion_tokens: 50,
        prompt_tokens_details: { audio_tokens: 30 },
        completion_tokens_details: { audio_tokens: 20 },
      }),
    ).toEqual(
      usage({
        inputTokens: 70,
        outputTokens: 30,
        units: { audioInputTokens: 30, audioOutputTokens: 20 },
      }),
    );
  });

  it('accepts reasoning that is the whole completion', () => {
    expect(
      normalizeOpenAIChatUsage({
        prompt_tokens: 0,
        completion_tokens: 64,
        completion_tokens_details: { reasoning_tokens: 64 },
      }),
    ).toEqual(usage({ outputTokens: 64, reasoningTokens: 64 }));
  });

  const valid = {
    prompt_tokens: 4020,
    completion_tokens: 4,
    prompt_tokens_details: { cached_tokens: 4012 },
    completion_tokens_details: { reasoning_tokens: 0 },
  };

  it.each<[string, unknown]>([
    ['a null block', null],
    ['an array', [valid]],
    ['a number', 4024],
    ['no prompt_tokens', { completion_tokens: 4 }],
    ['no completion_tokens', { prompt_tokens: 4020 }],
    ['null prompt_tokens', { ...valid, prompt_tokens: null }],
    ['a string prompt_tokens', { ...valid, prompt_tokens: '4020' }],
    ['a string completion_tokens', { ...valid, completion_tokens: '4' }],
    ['a negative prompt_tokens', { ...valid, prompt_tokens: -1 }],
    ['a negative completion_tokens', { ...valid, completion_tokens: -4 }],
    ['a fractional count', { ...valid, completion_tokens: 4.5 }],
    ['a count beyond 2^53', { ...valid, prompt_tokens: 2 ** 53 }],
    ['a boolean count', { ...valid, completion_tokens: true }],
    [
      'a string cached_tokens',
      { ...valid, prompt_tokens_details: { cached_tokens: '4012' } },
    ],
    [
      'a negative cached_tokens',
      { ...valid, prompt_tokens_details: { cached_tokens: -4012 } },
    ],
    [
      'cached_tokens above prompt_tokens',
      { ...valid, prompt_tokens_details: { cached_tokens: 4021 } },
    ],
    [
      'cache_write_tokens above prompt_tokens',
      { ...valid, prompt_tokens_details: { cache_write_tokens: 4021 } },
    ],
    [
      // 4012 + 9 = 4021 > 4020: some token would be counted twice.
      'cached and written tokens together above prompt_tokens',
      {
        ...valid,
        prompt_tokens_details: { cached_tokens: 4012, cache_write_tokens: 9 },
      },
    ],
    [
      'reasoning_tokens above completion_tokens',
      { ...valid, completion_tokens_details: { reasoning_tokens: 5 } },
    ],
    [
      'a string reasoning_tokens',
      { ...valid, completion_tokens_details: { reasoning_tokens: '0' } },
    ],
    [
      'audio output above completion_tokens',
      { ...valid, completion_tokens_details: { audio_tokens: 5 } },
    ],
    [
      'prompt_tokens_details that is not an object',
      { ...valid, prompt_tokens_details: 4012 },
    ],
    [
      'completion_tokens_details that is an array',
      { ...valid, completion_tokens_details: [0] },
    ],
  ])('throws UsageParseError on %s', (_label, raw) => {
    expect(() => normalizeOpenAIChatUsage(raw)).toThrow(UsageParseError);
  });

  it('normalises the valid block those cases are built from', () => {
    // Guards the table above: each case fails for its own reason only.
    expect(normalizeOpenAIChatUsage(valid)).toEqual(
      usage({ inputTokens: 8, cacheReadTokens: 4012, outputTokens: 4 }),
    );
  });
});

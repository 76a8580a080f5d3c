/**
 * Every OpenAI Responses and Azure OpenAI recording in `../shared/data/wire`
 * read through the gateway's decoders, its usage checked against numbers
 * worked out by hand from the file.
 *
 * The Responses API counts cached tokens and cache writes inside
 * `input_tokens` and reasoning inside `output_tokens`, as Chat Completions
 * does; each input token must land in exactly one class.
 */
import { readdirSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import type { NormalizedUsage } from '../../../src/metering/usage.js';
import { openAIChatUpstream } from '../../../src/protocol/openai/openai-chat-upstream.js';
import { openAIResponsesUpstream } from '../../../src/protocol/openai/openai-responses-upstream.js';
import { sharedDataPresent, sharedFile } from '../../helpers/shared-data.js';
import {
  decodeAt,
  eventsOf,
  textOf,
  usage,
  wireJson,
  wireStream,
} from './openai-test-helpers.js';

interface Expectation {
  readonly read: string;
  /** Null for a recording that carries no usage (an error). */
  readonly normalized: NormalizedUsage | null;
}

const EXPECTED: Readonly<Record<string, Expectation>> = {
  'openai_responses_nonstream_cached-reasoning.json': {
    read: 'input 7243 (cached 3072); output 423 (reasoning 58); total 7666',
    // 7243 − 3072 = 4171 uncached; 7243 + 423 = 7666 confirms the total.
    normalized: usage({
      inputTokens: 4171,
      cacheReadTokens: 3072,
      outputTokens: 423,
      reasoningTokens: 58,
    }),
  },
  'openai_responses_nonstream_simple.response.json': {
    read: 'input 14 (cached 0); output 8 (reasoning 0); total 22',
    normalized: usage({ inputTokens: 14, outputTokens: 8 }),
  },
  'openai_responses_nonstream_prompt-cache-write.response.json': {
    read: 'input 4020 (cache_write 4012, cached 0); output 5; total 4025',
    // 4020 − 4012 = 8 uncached + 4012 written; tool_usage all zero.
    normalized: usage({
      inputTokens: 8,
      cacheWriteTokens: 4012,
      outputTokens: 5,
    }),
  },
  'openai_responses_nonstream_prompt-cache-read.response.json': {
    read: 'input 4020 (cached 4012, cache_write 0); output 5; total 4025',
    normalized: usage({
      inputTokens: 8,
      cacheReadTokens: 4012,
      outputTokens: 5,
    }),
  },
  'openai_responses_stream_cached-reasoning.chunks.jsonl': {
    read: 'response.completed: input 7112 (cached 3072); output 463 (reasoning 64)',
    // 7112 − 3072 = 4040 uncached; total 7575 = 7112 + 463.
    normalized: usage({
      inputTokens: 4040,
      cacheReadTokens: 3072,
      outputTokens: 463,
      reasoningTokens: 64,
    }),
  },
  'openai_responses_stream_custom-tool.chunks.jsonl': {
    read: 'response.completed: input 50 (cached 0); output 20; total 70',
    normalized: usage({ inputTokens: 50, outputTokens: 20 }),
  },
  'openai_responses_stream_error.chunks.jsonl': {
    read: 'error event (insufficient_quota), response.failed without usage',
    normalized: null,
  },
  'openai_responses_nonstream_error.json': {
    read: 'an error body: insufficient_quota',
    normalized: null,
  },
  'azure-openai_chat_stream_reasoning-tokens.chunks.jsonl': {
    read: 'last chunk: prompt 15 (cached 0); completion 78 (reasoning 64)',
    // 78 output of which 64 reasoning (14 visible); total 93 = 15 + 78.
    normalized: usage({
      inputTokens: 15,
      outputTokens: 78,
      reasoningTokens: 64,
    }),
  },
};

function isCovered(name: string): boolean {
  return (
    /^(openai_responses_|azure-openai_)/.test(name) &&
    !name.endsWith('.request.json')
  );
}

/** The final usage a recording yields through the matching decoder. */
function decodedUsage(name: string): NormalizedUsage | null {
  if (name.endsWith('.json')) {
    return openAIResponsesUpstream.decodeResponse(wireJson(name)).usage;
  }
  const upstream = name.startsWith('azure-openai_chat_')
    ? openAIChatUpstream
    : openAIResponsesUpstream;
  const events = eventsOf(
    decodeAt(upstream.createStreamDecoder(), wireStream(name)),
  );
  const finals = events.filter(
    (event) => event.type === 'usage' && event.final,
  );
  expect(finals.length).toBeLessThanOrEqual(1);
  const last = finals.at(-1);
  return last?.type === 'usage' ? last.usage : null;
}

describe.skipIf(!sharedDataPresent)(
  'recorded Responses and Azure usage',
  () => {
    it('has an expectation for every Responses and Azure recording', () => {
      const recordings = readdirSync(sharedFile('wire'))
        .filter(isCovered)
        .sort();
      expect(recordings).toEqual(Object.keys(EXPECTED).sort());
    });

    it.each(
      Object.entries(EXPECTED)
        .filter(([, e]) => e.normalized !== null)
        .map(([name, e]) => [name, e.read, e.normalized]),
    )('%s (%s)', (name, _read, normalized) => {
      expect(decodedUsage(name)).toEqual(normalized);
    });

    it('reads the Azure stream past its prompt-filter chunk', () => {
      const frames = decodeAt(
        openAIChatUpstream.createStreamDecoder(),
        wireStream('azure-openai_chat_stream_reasoning-tokens.chunks.jsonl'),
      );
      // The first chunk (prompt_filter_results, empty id) yields nothing.
      expect(frames[0]?.events).toEqual([]);
      const events = eventsOf(frames);
      expect(events[0]).toEqual({
        type: 'message_start',
        id: 'chatcmpl-CYPS1lijGoK8gd9lYzY3r9Sx50nbt',
        model: 'gpt-5-nano-2025-08-07',
      });
      // Deltas "Capital", " of", " Denmark", ".".
      expect(textOf(events)).toBe('Capital of Denmark.');
      expect(events).toContainEqual({
        type: 'message_stop',
        stopReason: 'end_turn',
        stopSequence: null,
      });
    });

    it('turns the streamed insufficient_quota error into a rate limit', () => {
      const events = eventsOf(
        decodeAt(
          openAIResponsesUpstream.createStreamDecoder(),
          wireStream('openai_responses_stream_error.chunks.jsonl'),
        ),
      );
      const errors = events.filter((event) => event.type === 'error');
      // One from the `error` event, one from `response.failed`.
      expect(errors).toHaveLength(2);
      expect(errors[0]).toMatchObject({
        error: {
          kind: 'rate_limit',
          status: 429,
          upstreamCode: 'insufficient_quota',
        },
      });
      expect(events.some((event) => event.type === 'usage')).toBe(false);
    });

    it('reads the non-streamed error body as a rate limit', () => {
      const info = openAIResponsesUpstream.decodeError(
        429,
        {},
        wireJson('openai_responses_nonstream_error.json'),
      );
      expect(info).toMatchObject({
        kind: 'rate_limit',
        status: 429,
        upstreamCode: 'insufficient_quota',
        retryAfter: null,
      });
      expect(info.message).toMatch(/^You exceeded your current quota/);
    });
  },
);

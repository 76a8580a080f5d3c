/**
 * Responses API request decoding and encoding, the stream decoder on the
 * recorded streams, and the Responses and embeddings usage normalisers.
 */
import { describe, expect, it } from 'vitest';

import { UsageParseError } from '../../../src/metering/usage.js';
import {
  UntranslatableError,
  type CanonicalChatRequest,
} from '../../../src/protocol/canonical.js';
import {
  openAIResponsesInbound,
  openAIResponsesUntranslatable,
} from '../../../src/protocol/openai/openai-responses-inbound.js';
import { openAIResponsesUpstream } from '../../../src/protocol/openai/openai-responses-upstream.js';
import { ResponsesStreamDecoder } from '../../../src/protocol/openai/responses-stream-decoder.js';
import { normalizeOpenAIEmbeddingsUsage } from '../../../src/providers/openai/normalize-embeddings-usage.js';
import { normalizeOpenAIResponsesUsage } from '../../../src/providers/openai/normalize-responses-usage.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import {
  decodeAt,
  eventsOf,
  usage,
  wireJson,
  wireStream,
} from './openai-test-helpers.js';

describe('openAIResponsesInbound.decodeRequest', () => {
  it('maps items onto turns and instructions onto the system prompt', () => {
    const request = openAIResponsesInbound.decodeRequest(
      {
        model: 'gpt-5',
        instructions: 'Be brief.',
        input: [
          { role: 'developer', content: 'Use tools.' },
          {
            role: 'user',
            content: [
              { type: 'input_text', text: 'Look:' },
              { type: 'input_image', image_url: 'https://x.test/a.png' },
            ],
          },
          {
            type: 'message',
            role: 'assistant',
            content: [{ type: 'output_text', text: 'Checking.' }],
          },
          {
            type: 'function_call',
            call_id: 'c1',
            name: 'f',
            arguments: '{"a":1}',
          },
          { type: 'function_call', call_id: 'c2', name: 'f', arguments: '{}' },
          { type: 'function_call_output', call_id: 'c1', output: 'one' },
          { type: 'function_call_output', call_id: 'c2', output: 'two' },
          { role: 'user', content: 'And?' },
        ],
        tools: [
          { type: 'function', name: 'f', parameters: { type: 'object' } },
          { type: 'web_search' },
        ],
        tool_choice: { type: 'function', name: 'f' },
        max_output_tokens: 200,
        stream: true,
        user: 'u7',
      },
      null,
    );
    expect(request).toEqual<CanonicalChatRequest>({
      model: 'gpt-5',
      system: ['Be brief.', 'Use tools.'],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Look:' },
            {
              type: 'image',
              source: { kind: 'url', url: 'https://x.test/a.png' },
            },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Checking.' },
            { type: 'tool_use', id: 'c1', name: 'f', input: { a: 1 } },
            { type: 'tool_use', id: 'c2', name: 'f', input: {} },
          ],
        },
        {
          role: 'user',
          content: [
            {
              type: 'tool_result',
              toolUseId: 'c1',
              content: [{ type: 'text', text: 'one' }],
              isError: false,
            },
            {
              type: 'tool_result',
              toolUseId: 'c2',
              content: [{ type: 'text', text: 'two' }],
              isError: false,
            },
          ],
        },
        { role: 'user', content: [{ type: 'text', text: 'And?' }] },
      ],
      tools: [
        { name: 'f', description: null, inputSchema: { type: 'object' } },
      ],
      toolChoice: { type: 'tool', name: 'f' },
      maxOutputTokens: 200,
      temperature: null,
      topP: null,
      stopSequences: [],
      thinkingBudgetTokens: null,
      stream: true,
      includeUsage: true,
      endUser: 'u7',
    });
  });

  it.each<[string, Record<string, unknown>, string | null]>([
    ['user first', { user: 'u', metadata: { user_id: 'm' } }, 'u'],
    ['metadata.user_id last', { metadata: { user_id: 'm' } }, 'm'],
    ['nobody', { metadata: { team: 't' } }, null],
  ])('reads the end user as the README lists it: %s', (_l, fields, user) => {
    const request = openAIResponsesInbound.decodeRequest(
      { model: 'm', input: 'Hello', ...fields },
      null,
    );
    expect(request.endUser).toBe(user);
  });

  it("refuses an end user above OpenAI's 256 characters", () => {
    expect(() =>
      openAIResponsesInbound.decodeRequest(
        { model: 'm', input: 'Hello', metadata: { user_id: 'm'.repeat(257) } },
        null,
      ),
    ).toThrow(expect.objectContaining({ param: 'metadata.user_id' }));
  });

  it('reads a string input as one user turn', () => {
    const request = openAIResponsesInbound.decodeRequest(
      { model: 'm', input: 'Hello' },
      null,
    );
    expect(request.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Hello' }] },
    ]);
  });

  it('names what another API could not honour', () => {
    expect(
      openAIResponsesUntranslatable({
        model: 'm',
        previous_response_id: 'resp_1',
        store: true,
        reasoning: { effort: 'high' },
        include: ['reasoning.encrypted_content'],
        text: { format: { type: 'json_schema' } },
        tools: [
          { type: 'function', name: 'f', strict: true },
          { type: 'function', name: 'g' },
          { type: 'web_search' },
        ],
        input: [
          { role: 'user', content: 'hi' },
          { type: 'reasoning', id: 'rs_1', summary: [] },
          { role: 'system', content: 'late' },
          { role: 'user', content: [{ type: 'input_file', file_id: 'f1' }] },
        ],
      }),
    ).toEqual([
      'previous_response_id',
      'store',
      'include',
      'reasoning',
      'text.format',
      'tools[0].strict',
      'tools[2].type',
      'input[1].type',
      'input[2].role',
      'input[3].content[0]',
    ]);
    // The recorded request echoes null reasoning fields: nothing lost.
    expect(
      openAIResponsesUntranslatable({
        model: 'gpt-4o',
        input: [{ role: 'user', content: 'What is the capital of France?' }],
        reasoning: { effort: null, summary: null },
        stream: false,
      }),
    ).toEqual([]);
  });
});

const BASE: CanonicalChatRequest = {
  model: 'a',
  system: [],
  messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
  tools: [],
  toolChoice: null,
  maxOutputTokens: null,
  temperature: null,
  topP: null,
  stopSequences: [],
  thinkingBudgetTokens: null,
  stream: false,
  includeUsage: true,
  endUser: null,
};

describe('openAIResponsesUpstream.encodeRequest', () => {
  it('keeps two system parts apart as system messages', () => {
    expect(
      openAIResponsesUpstream.encodeRequest(
        { ...BASE, system: ['One.', 'Two.'] },
        'gpt-5',
      ),
    ).toEqual({
      model: 'gpt-5',
      input: [
        { role: 'system', content: 'One.' },
        { role: 'system', content: 'Two.' },
        { role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
      ],
      store: false,
    });
  });

  it.each<[string, Partial<CanonicalChatRequest>]>([
    ['stop sequences', { stopSequences: ['END'] }],
    ['an output cap under 16', { maxOutputTokens: 15 }],
    ['a thinking budget', { thinkingBudgetTokens: 2048 }],
    [
      'thinking in the history',
      {
        messages: [
          {
            role: 'assistant',
            content: [{ type: 'thinking', text: 't', signature: 's' }],
          },
        ],
      },
    ],
  ])('refuses %s', (_label, change) => {
    expect(() =>
      openAIResponsesUpstream.encodeRequest({ ...BASE, ...change }, 'm'),
    ).toThrow(UntranslatableError);
  });
});

describe.skipIf(!sharedDataPresent)('Responses decoding of recordings', () => {
  it('decodes the two recorded messages of the cached-reasoning answer', () => {
    const response = openAIResponsesUpstream.decodeResponse(
      wireJson('openai_responses_nonstream_cached-reasoning.json'),
    );
    expect(response.stopReason).toBe('end_turn');
    expect(response.content.map((block) => block.type)).toEqual([
      'text',
      'text',
    ]);
    expect(response.model).toBe('gpt-5.3-codex');
  });

  it('splits the cached-reasoning stream at every byte the same way', () => {
    const bytes = wireStream(
      'openai_responses_stream_cached-reasoning.chunks.jsonl',
    );
    const whole = eventsOf(decodeAt(new ResponsesStreamDecoder(), bytes));
    // Two messages, output indexes 0 and 2: two text blocks, in order.
    expect(whole.filter((event) => event.type === 'block_start')).toEqual([
      { type: 'block_start', index: 0, block: { type: 'text' } },
      { type: 'block_start', index: 1, block: { type: 'text' } },
    ]);
    expect(whole.slice(-2)).toEqual([
      { type: 'message_stop', stopReason: 'end_turn', stopSequence: null },
      expect.objectContaining({ type: 'usage', final: true }),
    ]);

    const expected = JSON.stringify(whole);
    const wrong: number[] = [];
    for (let cut = 1; cut < bytes.length; cut++) {
      const frames = decodeAt(new ResponsesStreamDecoder(), bytes, [cut]);
      const raw = Buffer.concat(frames.map((frame) => frame.raw as Buffer));
      if (JSON.stringify(eventsOf(frames)) !== expected || !raw.equals(bytes)) {
        wrong.push(cut);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('gives the custom tool call no events but still the usage', () => {
    const events = eventsOf(
      decodeAt(
        new ResponsesStreamDecoder(),
        wireStream('openai_responses_stream_custom-tool.chunks.jsonl'),
      ),
    );
    expect(events.map((event) => event.type)).toEqual([
      'message_start',
      'message_stop',
      'usage',
    ]);
  });
});

describe('ResponsesStreamDecoder', () => {
  it('reads reasoning summaries as thinking and function calls as tools', () => {
    const sse = (data: object) => `data: ${JSON.stringify(data)}\n\n`;
    const bytes = Buffer.from(
      [
        { type: 'response.created', response: { id: 'resp_1', model: 'o4' } },
        {
          type: 'response.output_item.added',
          output_index: 0,
          item: { type: 'reasoning' },
        },
        {
          type: 'response.reasoning_summary_part.added',
          output_index: 0,
          summary_index: 0,
        },
        {
          type: 'response.reasoning_summary_text.delta',
          output_index: 0,
          summary_index: 0,
          delta: 'Hm.',
        },
        {
          type: 'response.reasoning_summary_part.done',
          output_index: 0,
          summary_index: 0,
        },
        {
          type: 'response.output_item.added',
          output_index: 1,
          item: {
            type: 'function_call',
            call_id: 'call_9',
            name: 'f',
            arguments: '',
          },
        },
        {
          type: 'response.function_call_arguments.delta',
          output_index: 1,
          delta: '{}',
        },
        { type: 'response.output_item.done', output_index: 1, item: {} },
        {
          type: 'response.completed',
          response: {
            status: 'completed',
            usage: {
              input_tokens: 5,
              output_tokens: 20,
              output_tokens_details: { reasoning_tokens: 12 },
            },
          },
        },
      ]
        .map(sse)
        .join(''),
    );
    expect(eventsOf(decodeAt(new ResponsesStreamDecoder(), bytes))).toEqual([
      { type: 'message_start', id: 'resp_1', model: 'o4' },
      { type: 'block_start', index: 0, block: { type: 'thinking' } },
      { type: 'thinking_delta', index: 0, text: 'Hm.' },
      { type: 'block_stop', index: 0 },
      {
        type: 'block_start',
        index: 1,
        block: { type: 'tool_use', id: 'call_9', name: 'f' },
      },
      { type: 'tool_input_delta', index: 1, json: '{}' },
      { type: 'block_stop', index: 1 },
      { type: 'message_stop', stopReason: 'tool_use', stopSequence: null },
      {
        type: 'usage',
        usage: usage({ inputTokens: 5, outputTokens: 20, reasoningTokens: 12 }),
        raw: {
          input_tokens: 5,
          output_tokens: 20,
          output_tokens_details: { reasoning_tokens: 12 },
        },
        final: true,
      },
    ]);
  });
});

describe('normalizeOpenAIResponsesUsage', () => {
  it('turns server-side tool use into named units', () => {
    expect(
      normalizeOpenAIResponsesUsage(
        { input_tokens: 100, output_tokens: 10 },
        {
          web_search: { num_requests: 2 },
          image_gen: { input_tokens: 0, output_tokens: 1056 },
        },
      ),
    ).toEqual(
      usage({
        inputTokens: 100,
        outputTokens: 10,
        units: { webSearchCalls: 2, imageGenerationOutputTokens: 1056 },
      }),
    );
  });

  const valid = {
    input_tokens: 4020,
    input_tokens_details: { cached_tokens: 4012 },
    output_tokens: 5,
    output_tokens_details: { reasoning_tokens: 0 },
  };

  it.each<[string, unknown]>([
    ['a null block', null],
    ['no input_tokens', { output_tokens: 5 }],
    ['no output_tokens', { input_tokens: 5 }],
    ['a string count', { ...valid, input_tokens: '4020' }],
    [
      'cached above input',
      { ...valid, input_tokens_details: { cached_tokens: 4021 } },
    ],
    [
      // 4012 + 9 = 4021 > 4020.
      'cached and written above input',
      {
        ...valid,
        input_tokens_details: { cached_tokens: 4012, cache_write_tokens: 9 },
      },
    ],
    [
      'reasoning above output',
      { ...valid, output_tokens_details: { reasoning_tokens: 6 } },
    ],
    ['details that are not an object', { ...valid, input_tokens_details: 3 }],
  ])('throws UsageParseError on %s', (_label, raw) => {
    expect(() => normalizeOpenAIResponsesUsage(raw)).toThrow(UsageParseError);
  });

  it('normalises the block those cases are built from', () => {
    expect(normalizeOpenAIResponsesUsage(valid)).toEqual(
      usage({ inputTokens: 8, cacheReadTokens: 4012, outputTokens: 5 }),
    );
  });
});

describe('normalizeOpenAIEmbeddingsUsage', () => {
  it('counts every prompt token as uncached input', () => {
    expect(
      normalizeOpenAIEmbeddingsUsage({ prompt_tokens: 8, total_tokens: 8 }),
    ).toEqual(usage({ inputTokens: 8 }));
  });

  it.each<[string, unknown]>([
    ['a missing block', undefined],
    ['no prompt_tokens', { total_tokens: 8 }],
    ['a total that is not the prompt', { prompt_tokens: 8, total_tokens: 9 }],
    ['a negative count', { prompt_tokens: -1 }],
  ])('throws UsageParseError on %s', (_label, raw) => {
    expect(() => normalizeOpenAIEmbeddingsUsage(raw)).toThrow(UsageParseError);
  });
});

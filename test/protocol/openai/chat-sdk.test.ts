/**
 * What the Chat Completions encoders write, parsed by the official
 * `openai` SDK. The canonical input is real upstream traffic: a request
 * encoded for the OpenAI fake, answered with a synthesised item and
 * decoded back, so the whole translation path is exercised.
 *
 * Usage numbers are given to the fake in canonical classes (20 uncached,
 * 100 cache reads, 12 output of which 4 reasoning), so OpenAI's shape on
 * the far side must read 120 prompt tokens with 100 cached.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startOpenAIFake,
  type OpenAIFake,
} from '../../../src/fakes/openai/openai-fake-server.js';
import type {
  CanonicalChatRequest,
  CanonicalStreamEvent,
  ClientError,
} from '../../../src/protocol/canonical.js';
import { createChatStreamEncoder } from '../../../src/protocol/openai/chat-stream-encoder.js';
import { openAIChatInbound } from '../../../src/protocol/openai/openai-chat-inbound.js';
import { openAIChatUpstream } from '../../../src/protocol/openai/openai-chat-upstream.js';
import { usage } from './openai-test-helpers.js';
import { sdkAnswering } from './openai-test-helpers.js';
import {
  decodedResponse,
  dispatcher,
  encodeAll,
  openAIClient,
  streamedEvents,
} from './pipeline.js';

const REQUEST: CanonicalChatRequest = {
  model: 'my-alias',
  system: ['Be brief.'],
  messages: [{ role: 'user', content: [{ type: 'text', text: 'Capital?' }] }],
  tools: [
    {
      name: 'get_capital',
      description: null,
      inputSchema: { type: 'object', properties: { country: {} } },
    },
  ],
  toolChoice: { type: 'auto' },
  maxOutputTokens: 64,
  temperature: null,
  topP: null,
  stopSequences: [],
  thinkingBudgetTokens: null,
  stream: true,
  includeUsage: true,
  endUser: null,
};

const ITEM = {
  kind: 'synthesize',
  usage: { input: 20, cacheRead: 100, output: 12, reasoning: 4 },
  text: 'Looking it up.',
  toolCall: { name: 'get_capital', arguments: { country: 'UK' } },
} as const;

/** OpenAI's block for the counts above: 20 + 100 = 120 prompt tokens. */
const WIRE_USAGE = {
  prompt_tokens: 120,
  completion_tokens: 12,
  total_tokens: 132,
  prompt_tokens_details: { cached_tokens: 100, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 4, audio_tokens: 0 },
};

let fake: OpenAIFake;
beforeAll(async () => {
  fake = await startOpenAIFake();
});
afterAll(async () => {
  await fake.close();
});

async function upstreamEvents(): Promise<CanonicalStreamEvent[]> {
  fake.enqueue(ITEM);
  const response = await openAIClient(fake.url, 'openai-chat').sendChat({
    body: openAIChatUpstream.encodeRequest(REQUEST, 'gpt-4o-mini'),
    upstreamModel: 'gpt-4o-mini',
    stream: true,
    signal: AbortSignal.timeout(5_000),
  });
  expect(response.status).toBe(200);
  return streamedEvents(response, openAIChatUpstream);
}

const SSE = 'text/event-stream';

describe('Chat Completions stream encoder, read by the openai SDK', () => {
  it('gives the SDK text, a tool call, the finish and the usage chunk', async () => {
    const events = await upstreamEvents();
    const encoder = openAIChatInbound.createStreamEncoder({
      requestId: 'req_1',
      model: 'my-alias',
      includeUsage: true,
    });
    const client = sdkAnswering(encodeAll(encoder, events), SSE);

    const chunks = [];
    const stream = await client.chat.completions.create({
      model: 'my-alias',
      messages: [{ role: 'user', content: 'Capital?' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) chunks.push(chunk);

    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
    expect(chunks.every((chunk) => chunk.model === 'my-alias')).toBe(true);
    expect(new Set(chunks.map((chunk) => chunk.id))).toEqual(
      new Set([expect.stringMatching(/^chatcmpl-fake\d+$/)]),
    );
    const text = chunks
      .map((chunk) => chunk.choices[0]?.delta.content ?? '')
      .join('');
    expect(text).toBe('Looking it up.');
    const args = chunks
      .flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? [])
      .map((call) => call.function?.arguments ?? '')
      .join('');
    expect(args).toBe('{"country":"UK"}');

    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toEqual(WIRE_USAGE);
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('tool_calls');
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
  });

  it('assembles into a whole completion with the SDK stream helper', async () => {
    const events = await upstreamEvents();
    const encoder = createChatStreamEncoder({
      requestId: 'req_2',
      model: 'my-alias',
      includeUsage: true,
    });
    const client = sdkAnswering(encodeAll(encoder, events), SSE);
    const completion = await client.chat.completions
      .stream({
        model: 'my-alias',
        messages: [{ role: 'user', content: 'Capital?' }],
      })
      .finalChatCompletion();
    const message = completion.choices[0]?.message;
    expect(message?.content).toBe('Looking it up.');
    expect(message?.tool_calls).toMatchObject([
      {
        id: expect.stringMatching(/^call_fake\d+$/),
        type: 'function',
        function: { name: 'get_capital', arguments: '{"country":"UK"}' },
      },
    ]);
    expect(completion.usage).toEqual(WIRE_USAGE);
  });

  it('leaves out every usage field unless the client asked', async () => {
    const events = await upstreamEvents();
    const encoder = openAIChatInbound.createStreamEncoder({
      requestId: 'req_3',
      model: 'my-alias',
      includeUsage: false,
    });
    const bytes = encodeAll(encoder, events).toString('utf8');
    expect(bytes).not.toContain('"usage"');
    expect(bytes.endsWith('data: [DONE]\n\n')).toBe(true);

    const chunks = [];
    const stream = await sdkAnswering(bytes, SSE).chat.completions.create({
      model: 'my-alias',
      messages: [{ role: 'user', content: 'Capital?' }],
      stream: true,
    });
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('tool_calls');
  });

  it("writes an upstream's early usage after the finish, as OpenAI orders them", () => {
    // Anthropic reports final usage (message_delta) before message_stop.
    const encoder = createChatStreamEncoder({
      requestId: 'req_4',
      model: 'claude',
      includeUsage: true,
      created: 1,
    });
    const bytes = encodeAll(encoder, [
      { type: 'message_start', id: 'msg_1', model: 'claude-x' },
      { type: 'block_start', index: 0, block: { type: 'thinking' } },
      { type: 'thinking_delta', index: 0, text: 'hmm' },
      { type: 'block_stop', index: 0 },
      { type: 'block_start', index: 1, block: { type: 'text' } },
      { type: 'text_delta', index: 1, text: 'Hi' },
      { type: 'block_stop', index: 1 },
      {
        type: 'usage',
        usage: usage({
          inputTokens: 3,
          cacheWriteTokens: 5,
          cacheWrite1hTokens: 2,
          outputTokens: 7,
          reasoningTokens: 4,
        }),
        raw: {},
        final: true,
      },
      { type: 'message_stop', stopReason: 'end_turn', stopSequence: null },
    ]).toString('utf8');
    const payloads = bytes
      .split('\n\n')
      .filter((frame) => frame !== '')
      .map((frame) => frame.slice('data: '.length));
    expect(payloads.at(-1)).toBe('[DONE]');
    const parsed = payloads
      .slice(0, -1)
      .map((data) => JSON.parse(data) as Record<string, unknown>);
    expect(parsed.map((chunk) => chunk['choices'])).toEqual([
      [
        {
          index: 0,
          delta: { role: 'assistant', content: '', refusal: null },
          logprobs: null,
          finish_reason: null,
        },
      ],
      // The thinking is not written; its tokens are in reasoning_tokens.
      [
        {
          index: 0,
          delta: { content: 'Hi' },
          logprobs: null,
          finish_reason: null,
        },
      ],
      [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }],
      [],
    ]);
    expect(parsed[0]?.['id']).toBe('chatcmpl-msg_1');
    expect(parsed.at(-1)?.['usage']).toEqual({
      // 3 + 5 + 2 = 10 prompt tokens; both cache lifetimes written: 7.
      prompt_tokens: 10,
      completion_tokens: 7,
      total_tokens: 17,
      prompt_tokens_details: {
        cached_tokens: 0,
        cache_write_tokens: 7,
        audio_tokens: 0,
      },
      completion_tokens_details: { reasoning_tokens: 4, audio_tokens: 0 },
    });
  });

  it('ends a stream with an error the SDK raises', async () => {
    const encoder = createChatStreamEncoder({
      requestId: 'req_5',
      model: 'm',
      includeUsage: false,
    });
    const error: ClientError = {
      status: 502,
      code: 'upstream_error',
      kind: 'server',
      message: 'The upstream provider failed.',
      param: null,
      requestId: 'req_5',
    };
    const bytes = Buffer.concat([
      encoder.encode({ type: 'message_start', id: 'x', model: 'm' }),
      encoder.encodeError(error),
    ]);
    const stream = await sdkAnswering(bytes, SSE).chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
    });
    await expect(async () => {
      for await (const _chunk of stream) {
        // drain
      }
    }).rejects.toThrow(/The upstream provider failed/);
  });
});

describe('Chat Completions JSON answers, read by the openai SDK', () => {
  it('translates a non-streamed answer with a tool call', async () => {
    fake.enqueue(ITEM);
    const response = await openAIClient(fake.url, 'openai-chat').sendChat({
      body: openAIChatUpstream.encodeRequest(
        { ...REQUEST, stream: false },
        'gpt-4o-mini',
      ),
      upstreamModel: 'gpt-4o-mini',
      stream: false,
      signal: AbortSignal.timeout(5_000),
    });
    const canonical = await decodedResponse(response, openAIChatUpstream);
    expect(canonical.usage).toEqual(
      usage({
        inputTokens: 20,
        cacheReadTokens: 100,
        outputTokens: 12,
        reasoningTokens: 4,
      }),
    );

    const body = openAIChatInbound.encodeResponse(canonical, {
      requestId: 'req_6',
      model: 'my-alias',
    });
    const completion = await sdkAnswering(
      JSON.stringify(body),
      'application/json',
    ).chat.completions.create({
      model: 'my-alias',
      messages: [{ role: 'user', content: 'Capital?' }],
    });
    expect(completion.model).toBe('my-alias');
    expect(completion.choices[0]?.finish_reason).toBe('tool_calls');
    expect(completion.choices[0]?.message.content).toBe('Looking it up.');
    expect(completion.choices[0]?.message.tool_calls).toEqual([
      {
        id: expect.stringMatching(/^call_fake\d+$/),
        type: 'function',
        function: { name: 'get_capital', arguments: '{"country":"UK"}' },
      },
    ]);
    expect(completion.usage).toEqual(WIRE_USAGE);
  });

  it.each<
    [ClientError['kind'], number, abstract new (...args: never[]) => unknown]
  >([
    ['rate_limit', 429, OpenAI.RateLimitError],
    ['invalid_request', 400, OpenAI.BadRequestError],
    ['authentication', 401, OpenAI.AuthenticationError],
    ['server', 502, OpenAI.InternalServerError],
  ])(
    'encodes a %s error (%i) as the SDK error class',
    async (kind, status, type) => {
      const {
        status: sent,
        headers,
        body,
      } = openAIChatInbound.encodeError({
        status,
        code: 'some_code',
        kind,
        message: 'refused',
        param: null,
        requestId: 'req_7',
      });
      expect(sent).toBe(status);
      expect(headers['x-request-id']).toBe('req_7');
      const client = sdkAnswering(body, 'application/json', status);
      const call = client.chat.completions.create({
        model: 'm',
        messages: [{ role: 'user', content: 'x' }],
      });
      await expect(call).rejects.toBeInstanceOf(type);
      await expect(call).rejects.toMatchObject({ code: 'some_code' });
    },
  );
});

afterAll(async () => {
  await dispatcher.close();
});

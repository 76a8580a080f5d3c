/**
 * The Responses API both ways, against the `openai` SDK and the fake:
 *
 * - as an upstream, a canonical request encoded for `/v1/responses` must
 *   pass the fake's request checks, and the answer (JSON or stream) must
 *   decode to the counts the fake was given;
 * - as an inbound API, what the encoders write must be accepted by the
 *   SDK's `responses.create` and `responses.stream` helpers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startOpenAIFake,
  type OpenAIFake,
} from '../../../src/fakes/openai/openai-fake-server.js';
import type {
  CanonicalChatRequest,
  CanonicalStreamEvent,
} from '../../../src/protocol/canonical.js';
import { openAIChatUpstream } from '../../../src/protocol/openai/openai-chat-upstream.js';
import { openAIResponsesInbound } from '../../../src/protocol/openai/openai-responses-inbound.js';
import { openAIResponsesUpstream } from '../../../src/protocol/openai/openai-responses-upstream.js';
import { textOf, usage, sdkAnswering } from './openai-test-helpers.js';
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
  messages: [
    { role: 'user', content: [{ type: 'text', text: 'Capital of the UK?' }] },
    {
      role: 'assistant',
      content: [
        {
          type: 'tool_use',
          id: 'call_1',
          name: 'get_capital',
          input: { country: 'UK' },
        },
      ],
    },
    {
      role: 'user',
      content: [
        {
          type: 'tool_result',
          toolUseId: 'call_1',
          content: [{ type: 'text', text: 'London' }],
          isError: false,
        },
      ],
    },
  ],
  tools: [
    {
      name: 'get_capital',
      description: 'Looks up a capital.',
      inputSchema: { type: 'object', properties: { country: {} } },
    },
  ],
  toolChoice: { type: 'auto' },
  maxOutputTokens: 64,
  temperature: 0.5,
  topP: null,
  stopSequences: [],
  thinkingBudgetTokens: null,
  stream: true,
  includeUsage: true,
  endUser: 'user-9',
};

/** 30 uncached + 200 read + 50 written; 40 output, 10 of them reasoning. */
const ITEM = {
  kind: 'synthesize',
  usage: {
    input: 30,
    cacheRead: 200,
    cacheWrite: 50,
    output: 40,
    reasoning: 10,
  },
  text: 'It is London.',
  toolCall: { name: 'get_capital', arguments: { country: 'France' } },
} as const;

const CANONICAL_USAGE = usage({
  inputTokens: 30,
  cacheReadTokens: 200,
  cacheWriteTokens: 50,
  outputTokens: 40,
  reasoningTokens: 10,
});

/** The Responses block for those counts: 30 + 200 + 50 = 280 input. */
const WIRE_USAGE = {
  input_tokens: 280,
  input_tokens_details: { cached_tokens: 200, cache_write_tokens: 50 },
  output_tokens: 40,
  output_tokens_details: { reasoning_tokens: 10 },
  total_tokens: 320,
};

let fake: OpenAIFake;
beforeAll(async () => {
  fake = await startOpenAIFake();
});
afterAll(async () => {
  await fake.close();
  await dispatcher.close();
});

async function callResponses(stream: boolean) {
  fake.enqueue(ITEM);
  return openAIClient(fake.url, 'openai-responses').sendChat({
    body: openAIResponsesUpstream.encodeRequest(
      { ...REQUEST, stream },
      'gpt-5-mini',
    ),
    upstreamModel: 'gpt-5-mini',
    stream,
    signal: AbortSignal.timeout(5_000),
  });
}

describe('the Responses API as an upstream, against the fake', () => {
  it('sends a body the fake accepts, in the Responses shape', async () => {
    const response = await callResponses(false);
    expect(response.status).toBe(200);
    expect(fake.requests.at(-1)?.body).toEqual({
      model: 'gpt-5-mini',
      instructions: 'Be brief.',
      input: [
        {
          role: 'user',
          content: [{ type: 'input_text', text: 'Capital of the UK?' }],
        },
        {
          type: 'function_call',
          call_id: 'call_1',
          name: 'get_capital',
          arguments: '{"country":"UK"}',
        },
        { type: 'function_call_output', call_id: 'call_1', output: 'London' },
      ],
      store: false,
      tools: [
        {
          type: 'function',
          name: 'get_capital',
          description: 'Looks up a capital.',
          parameters: { type: 'object', properties: { country: {} } },
          strict: false,
        },
      ],
      tool_choice: 'auto',
      max_output_tokens: 64,
      temperature: 0.5,
      user: 'user-9',
    });
    const canonical = await decodedResponse(response, openAIResponsesUpstream);
    expect(canonical.usage).toEqual(CANONICAL_USAGE);
    expect(canonical.stopReason).toBe('tool_use');
    expect(canonical.content).toEqual([
      { type: 'text', text: 'It is London.' },
      {
        type: 'tool_use',
        id: expect.stringMatching(/^call_fake\d+$/),
        name: 'get_capital',
        input: { country: 'France' },
      },
    ]);
  });

  it('decodes the streamed answer into blocks and the final usage', async () => {
    const events = await streamedEvents(
      await callResponses(true),
      openAIResponsesUpstream,
    );
    expect(events.map((event) => event.type)).toEqual([
      'message_start',
      'block_start',
      // "It", " is", " London.": one delta per word.
      'text_delta',
      'text_delta',
      'text_delta',
      'block_stop',
      'block_start',
      // '{"countr', 'y":"Fran', 'ce"}': 8-character fragments.
      'tool_input_delta',
      'tool_input_delta',
      'tool_input_delta',
      'block_stop',
      'message_stop',
      'usage',
    ]);
    expect(textOf(events)).toBe('It is London.');
    expect(events.at(-2)).toEqual({
      type: 'message_stop',
      stopReason: 'tool_use',
      stopSequence: null,
    });
    expect(events.at(-1)).toMatchObject({
      usage: CANONICAL_USAGE,
      raw: WIRE_USAGE,
      final: true,
    });
  });
});

/** Canonical events from a Chat Completions upstream, via the fake. */
async function chatUpstreamEvents(): Promise<CanonicalStreamEvent[]> {
  fake.enqueue(ITEM);
  const response = await openAIClient(fake.url, 'openai-chat').sendChat({
    body: openAIChatUpstream.encodeRequest(
      { ...REQUEST, system: [] },
      'gpt-4o-mini',
    ),
    upstreamModel: 'gpt-4o-mini',
    stream: true,
    signal: AbortSignal.timeout(5_000),
  });
  return streamedEvents(response, openAIChatUpstream);
}

const SSE = 'text/event-stream';

describe('Responses stream encoder, read by the openai SDK', () => {
  it('streams a translated answer the SDK assembles whole', async () => {
    const events = await chatUpstreamEvents();
    const encoder = openAIResponsesInbound.createStreamEncoder({
      requestId: 'req_1',
      model: 'my-alias',
      includeUsage: true,
    });
    const bytes = encodeAll(encoder, events);
    const client = sdkAnswering(bytes, SSE);

    const stream = client.responses.stream({ model: 'my-alias', input: 'Hi' });
    const deltas: string[] = [];
    const sequence: number[] = [];
    stream.on('event', (event) => sequence.push(event.sequence_number));
    stream.on('response.output_text.delta', (event) =>
      deltas.push(event.delta),
    );
    const final = await stream.finalResponse();

    expect(sequence).toEqual(sequence.map((_, i) => i));
    expect(deltas.join('')).toBe('It is London.');
    expect(final.status).toBe('completed');
    expect(final.model).toBe('my-alias');
    expect(final.output_text).toBe('It is London.');
    expect(final.output.map((item) => item.type)).toEqual([
      'message',
      'function_call',
    ]);
    expect(final.output[1]).toMatchObject({
      type: 'function_call',
      call_id: expect.stringMatching(/^call_fake\d+$/),
      name: 'get_capital',
      arguments: '{"country":"France"}',
    });
    expect(final.usage).toEqual(WIRE_USAGE);
  });

  it('streams thinking as a reasoning item and a cut-off as incomplete', async () => {
    const encoder = openAIResponsesInbound.createStreamEncoder({
      requestId: 'req_2',
      model: 'claude',
      includeUsage: true,
    });
    const bytes = encodeAll(encoder, [
      { type: 'message_start', id: 'msg_1', model: 'claude-x' },
      { type: 'block_start', index: 0, block: { type: 'thinking' } },
      { type: 'thinking_delta', index: 0, text: 'Think.' },
      { type: 'signature_delta', index: 0, signature: 'sig' },
      { type: 'block_stop', index: 0 },
      { type: 'block_start', index: 1, block: { type: 'text' } },
      { type: 'text_delta', index: 1, text: 'Partial' },
      {
        type: 'usage',
        usage: usage({ inputTokens: 9, outputTokens: 16, reasoningTokens: 3 }),
        raw: {},
        final: true,
      },
      { type: 'message_stop', stopReason: 'max_tokens', stopSequence: null },
    ]);
    const final = await sdkAnswering(bytes, SSE)
      .responses.stream({ model: 'claude', input: 'Hi' })
      .finalResponse();
    expect(final.id).toBe('resp_msg_1');
    expect(final.status).toBe('incomplete');
    expect(final.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(final.output[0]).toMatchObject({
      type: 'reasoning',
      summary: [{ type: 'summary_text', text: 'Think.' }],
    });
    expect(final.output_text).toBe('Partial');
    expect(final.usage).toMatchObject({
      input_tokens: 9,
      output_tokens: 16,
      output_tokens_details: { reasoning_tokens: 3 },
    });
  });

  it('ends a stream with an error event the SDK raises', async () => {
    const encoder = openAIResponsesInbound.createStreamEncoder({
      requestId: 'req_3',
      model: 'm',
      includeUsage: true,
    });
    const bytes = Buffer.concat([
      encoder.encode({ type: 'message_start', id: 'r', model: 'm' }),
      encoder.encodeError({
        status: 429,
        code: 'rate_limited',
        kind: 'rate_limit',
        message: 'Slow down.',
        param: null,
        requestId: 'req_3',
      }),
    ]);
    const stream = await sdkAnswering(bytes, SSE).responses.create({
      model: 'm',
      input: 'Hi',
      stream: true,
    });
    await expect(async () => {
      for await (const _event of stream) {
        // drain
      }
    }).rejects.toThrow(/Slow down/);
  });
});

describe('Responses JSON answers, read by the openai SDK', () => {
  it('translates a non-streamed Chat answer into a response', async () => {
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
    const body = openAIResponsesInbound.encodeResponse(canonical, {
      requestId: 'req_4',
      model: 'my-alias',
    });
    const result = await sdkAnswering(
      JSON.stringify(body),
      'application/json',
    ).responses.create({ model: 'my-alias', input: 'Hi' });
    expect(result.id).toMatch(/^resp_chatcmpl-fake\d+$/);
    expect(result.output_text).toBe('It is London.');
    expect(result.usage).toEqual(WIRE_USAGE);
  });
});

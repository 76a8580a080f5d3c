/**
 * The simulated upstream, driven by the official `openai` SDK as the
 * gateway's own upstream client would drive api.openai.com. Every expected
 * count is worked out here from the documented rules (4 UTF-8 bytes per
 * prompt token, 16 completion tokens by default, one word per token), not
 * read back from the module under test.
 */
import OpenAI, { APIError, BadRequestError, RateLimitError } from 'openai';
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
} from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startSimulatedUpstream,
  type SimulatedUpstream,
} from '../../src/providers/simulated/simulated-upstream.js';

const MODEL = 'gpt-4o-mini';

let sim: SimulatedUpstream;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSimulatedUpstream();
  client = new OpenAI({ baseURL: sim.url, apiKey: 'sk-test', maxRetries: 0 });
});

afterAll(async () => {
  await sim.close();
});

function words(text: string | null | undefined): number {
  return (text ?? '').split(' ').filter((word) => word !== '').length;
}

async function collect(
  stream: AsyncIterable<ChatCompletionChunk>,
): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

function contentChunks(chunks: ChatCompletionChunk[]) {
  return chunks.filter((chunk) => chunk.choices[0]?.delta.content);
}

async function postRaw(
  target: SimulatedUpstream,
  body: string,
  headers: Record<string, string> = { authorization: 'Bearer sk-test' },
): Promise<Response> {
  return fetch(`${target.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}

describe('non-streaming completions', () => {
  it('counts 4 UTF-8 bytes per prompt token and 16 completion tokens', async () => {
    const text = 'Grüß dich, Tollgate! 👋';
    // 'Grüß dich, Tollgate! ' is 21 characters, 23 bytes (ü, ß are 2
    // bytes each); the emoji is 4 bytes: 27 bytes, so 7 tokens.
    expect(new TextEncoder().encode(text).length).toBe(27);
    const system = 'Be brief.'; // 9 bytes: 36 bytes in all, 9 tokens.

    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: [
        { role: 'system', content: system },
        { role: 'user', content: [{ type: 'text', text }] },
      ],
    });

    expect(completion.usage).toEqual({
      prompt_tokens: 9,
      completion_tokens: 16,
      total_tokens: 25,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    });
    const [choice] = completion.choices;
    expect(words(choice?.message.content)).toBe(16);
    expect(choice?.finish_reason).toBe('stop');
    expect(completion.model).toBe(MODEL);
    expect(completion.object).toBe('chat.completion');
    expect(completion.id).toMatch(/^chatcmpl-\w+$/);
  });

  it('stops for length at max_completion_tokens', async () => {
    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      max_completion_tokens: 5,
    });

    expect(completion.usage?.completion_tokens).toBe(5);
    expect(words(completion.choices[0]?.message.content)).toBe(5);
    expect(completion.choices[0]?.finish_reason).toBe('length');
  });

  it('takes counts from metadata, cached and reasoning inside totals', async () => {
    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      metadata: {
        tollgate_sim_prompt_tokens: '1234',
        tollgate_sim_completion_tokens: '40',
        tollgate_sim_cached_tokens: '1000',
        tollgate_sim_reasoning_tokens: '12',
      },
    });

    expect(completion.usage).toMatchObject({
      prompt_tokens: 1234,
      completion_tokens: 40,
      total_tokens: 1274,
      prompt_tokens_details: { cached_tokens: 1000 },
      completion_tokens_details: { reasoning_tokens: 12 },
    });
    // Only the 40 - 12 = 28 visible tokens are text.
    expect(words(completion.choices[0]?.message.content)).toBe(28);
    expect(completion.choices[0]?.finish_reason).toBe('stop');
  });

  it('refuses to write more than a million output tokens in all', async () => {
    // 500,001 per choice × 2 choices = 1,000,002 > 1,000,000.
    await expect(
      client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'hi' }],
        n: 2,
        metadata: { tollgate_sim_completion_tokens: '500001' },
      }),
    ).rejects.toMatchObject({ status: 400, param: 'metadata' });
  });

  it('counts completion tokens per choice when n > 1', async () => {
    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'abcdefgh' }], // 2 tokens
      n: 3,
      max_tokens: 7,
      metadata: { tollgate_sim_reasoning_tokens: '2' },
    });

    expect(completion.usage).toMatchObject({
      prompt_tokens: 2,
      completion_tokens: 21,
      total_tokens: 23,
      completion_tokens_details: { reasoning_tokens: 6 },
    });
    expect(completion.choices.map((choice) => choice.index)).toEqual([0, 1, 2]);
    for (const choice of completion.choices) {
      expect(words(choice.message.content)).toBe(5);
      expect(choice.finish_reason).toBe('length');
    }
  });

  it('sends the wire shape of a recorded OpenAI response', async () => {
    const response = await postRaw(
      sim,
      JSON.stringify({
        model: MODEL,
        messages: [{ role: 'user', content: 'x' }],
      }),
    );
    const body = (await response.json()) as Record<string, unknown>;
    const choices = body['choices'] as Record<string, unknown>[];
    const usage = body['usage'] as Record<string, unknown>;

    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{32}$/);
    // Key order of openai_chat_nonstream_text.json (shared wire fixtures).
    expect(Object.keys(body)).toEqual([
      'id',
      'object',
      'created',
      'model',
      'choices',
      'usage',
      'service_tier',
      'system_fingerprint',
    ]);
    expect(body['service_tier']).toBe('default');
    expect(body['created']).toBeCloseTo(Date.now() / 1000, -1);
    expect(choices[0]).toEqual({
      index: 0,
      message: {
        role: 'assistant',
        content: expect.any(String),
        refusal: null,
        annotations: [],
      },
      logprobs: null,
      finish_reason: 'stop',
    });
    expect(Object.keys(usage)).toEqual([
      'prompt_tokens',
      'completion_tokens',
      'total_tokens',
      'prompt_tokens_details',
      'completion_tokens_details',
    ]);
  });
});

describe('streaming completions', () => {
  const streamed = (
    metadata: Record<string, string>,
    includeUsage?: boolean,
  ): ChatCompletionCreateParamsStreaming => ({
    model: MODEL,
    messages: [{ role: 'user', content: 'Tell me a story.' }],
    stream: true,
    ...(includeUsage === undefined
      ? {}
      : { stream_options: { include_usage: includeUsage } }),
    metadata,
  });

  it('ends with a usage chunk holding the counts asked for', async () => {
    const chunks = await collect(
      await client.chat.completions.create(
        streamed(
          {
            tollgate_sim_prompt_tokens: '77',
            tollgate_sim_completion_tokens: '50',
          },
          true,
        ),
      ),
    );

    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toMatchObject({
      prompt_tokens: 77,
      completion_tokens: 50,
      total_tokens: 127,
    });
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();

    // 50 text tokens at 16 per chunk: 16 + 16 + 16 + 2.
    const content = contentChunks(chunks);
    expect(content).toHaveLength(Math.ceil(50 / 16));
    const text = content.map((chunk) => chunk.choices[0]?.delta.content);
    expect(words(text.join(''))).toBe(50);

    expect(chunks[0]?.choices[0]?.delta).toEqual({
      role: 'assistant',
      content: '',
      refusal: null,
    });
    expect(chunks.at(-2)?.choices[0]).toMatchObject({
      delta: {},
      finish_reason: 'stop',
    });
  });

  it('sends no usage field or chunk without include_usage', async () => {
    for (const includeUsage of [undefined, false]) {
      const chunks = await collect(
        await client.chat.completions.create(streamed({}, includeUsage)),
      );

      expect(chunks.some((chunk) => 'usage' in chunk)).toBe(false);
      expect(chunks.every((chunk) => chunk.choices.length === 1)).toBe(true);
      expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
    }
  });

  it('streams only the visible tokens, in tokensPerChunk pieces', async () => {
    const small = await startSimulatedUpstream({ tokensPerChunk: 5 });
    const smallClient = new OpenAI({
      baseURL: small.url,
      apiKey: 'sk-test',
      maxRetries: 0,
    });
    try {
      const chunks = await collect(
        await smallClient.chat.completions.create(
          streamed(
            {
              tollgate_sim_prompt_tokens: '300',
              tollgate_sim_cached_tokens: '256',
              tollgate_sim_completion_tokens: '20',
              tollgate_sim_reasoning_tokens: '8',
            },
            true,
          ),
        ),
      );

      // 20 - 8 = 12 visible tokens at 5 per chunk: 5 + 5 + 2.
      const content = contentChunks(chunks);
      expect(content).toHaveLength(Math.ceil(12 / 5));
      expect(content.map((c) => words(c.choices[0]?.delta.content))).toEqual([
        5, 5, 2,
      ]);
      expect(chunks.at(-1)?.usage).toMatchObject({
        prompt_tokens: 300,
        completion_tokens: 20,
        total_tokens: 320,
        prompt_tokens_details: { cached_tokens: 256 },
        completion_tokens_details: { reasoning_tokens: 8 },
      });
    } finally {
      await small.close();
    }
  });

  it('writes text/event-stream frames that end with [DONE]', async () => {
    const response = await postRaw(
      sim,
      JSON.stringify({
        model: MODEL,
        messages: [{ role: 'user', content: 'x' }],
        stream: true,
        stream_options: { include_usage: true, include_obfuscation: false },
        max_tokens: 3,
      }),
    );
    const text = await response.text();
    const frames = text.split('\n\n').slice(0, -1);

    expect(response.headers.get('content-type')).toBe(
      'text/event-stream; charset=utf-8',
    );
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(frames.every((frame) => frame.startsWith('data: '))).toBe(true);
    // Opening, one content chunk, finish, usage, [DONE].
    expect(frames).toHaveLength(5);
    const opening = JSON.parse(frames[0]!.slice(6)) as Record<string, unknown>;
    // Key order of openai_chat_stream_text_include-usage.sse.
    expect(Object.keys(opening)).toEqual([
      'id',
      'object',
      'created',
      'model',
      'service_tier',
      'system_fingerprint',
      'choices',
      'usage',
    ]);
    const finish = JSON.parse(frames[2]!.slice(6)) as ChatCompletionChunk;
    expect(finish.choices[0]?.finish_reason).toBe('length');
  });
});

describe('validation', () => {
  const message = [{ role: 'user', content: 'hi' }];
  const refusals: [string, Record<string, unknown>, string | null][] = [
    ['model missing', { messages: message }, null],
    ['model not a string', { model: 4, messages: message }, 'model'],
    ['messages missing', { model: MODEL }, 'messages'],
    ['messages not an array', { model: MODEL, messages: 'hi' }, 'messages'],
    ['messages empty', { model: MODEL, messages: [] }, 'messages'],
    [
      'a message without a role',
      { model: MODEL, messages: [{ content: 'hi' }] },
      'messages[0].role',
    ],
    [
      'a role that is not a string',
      { model: MODEL, messages: [{ role: 1, content: 'hi' }] },
      'messages[0].role',
    ],
    [
      'stream not a boolean',
      { model: MODEL, messages: message, stream: 'yes' },
      'stream',
    ],
    [
      'stream_options without stream',
      { model: MODEL, messages: message, stream_options: {} },
      'stream_options',
    ],
    [
      'max_tokens of 0',
      { model: MODEL, messages: message, max_tokens: 0 },
      'max_tokens',
    ],
    [
      'max_completion_tokens not an integer',
      { model: MODEL, messages: message, max_completion_tokens: 1.5 },
      'max_completion_tokens',
    ],
    ['n of 0', { model: MODEL, messages: message, n: 0 }, 'n'],
    [
      'cached tokens beyond the prompt',
      {
        model: MODEL,
        messages: message,
        metadata: {
          tollgate_sim_prompt_tokens: '10',
          tollgate_sim_cached_tokens: '11',
        },
      },
      'metadata.tollgate_sim_cached_tokens',
    ],
    [
      'a metadata value over 512 characters',
      { model: MODEL, messages: message, metadata: { note: 'x'.repeat(513) } },
      'metadata.note',
    ],
    [
      'an unknown fault',
      {
        model: MODEL,
        messages: message,
        metadata: { tollgate_sim_fault: 'explode' },
      },
      'metadata.tollgate_sim_fault',
    ],
  ];

  it.each(refusals)('refuses %s with a 400', async (_, body, param) => {
    const error: unknown = await client.chat.completions
      .create(body as never)
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );

    expect(error).toBeInstanceOf(BadRequestError);
    const refusal = error as BadRequestError;
    expect(refusal.status).toBe(400);
    expect(refusal.type).toBe('invalid_request_error');
    expect(refusal.param).toBe(param);
    expect(refusal.message.length).toBeGreaterThan(0);
  });

  it('accepts null for the optional fields', async () => {
    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      stream: null,
      stream_options: null,
      max_tokens: null,
      max_completion_tokens: null,
      n: null,
      metadata: null,
    });

    expect(completion.usage?.completion_tokens).toBe(16);
  });

  it('refuses a body that is not JSON', async () => {
    const response = await postRaw(sim, '{"model": ');
    const body = (await response.json()) as { error: Record<string, unknown> };

    expect(response.status).toBe(400);
    expect(body.error).toMatchObject({
      type: 'invalid_request_error',
      param: null,
      code: null,
    });
    expect(body.error['message']).toMatch(/could not parse the JSON body/);
  });

  it('wants a bearer key, and shows the one it got', async () => {
    const body = { model: MODEL, messages: [{ role: 'user', content: 'hi' }] };
    const refused = await postRaw(sim, JSON.stringify(body), {});
    const refusal = (await refused.json()) as { error: { code: string } };

    expect(refused.status).toBe(401);
    expect(refusal.error.code).toBe('invalid_api_key');

    await client.chat.completions.create({
      ...body,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(sim.lastRequest?.headers.authorization).toBe('Bearer sk-test');
    expect(sim.lastRequest?.body).toEqual(body);
  });
});

describe('faults', () => {
  const faulty = (fault: string) => ({
    model: MODEL,
    messages: [{ role: 'user' as const, content: 'hi' }],
    metadata: { tollgate_sim_fault: fault },
  });

  it('answers status:503 with an OpenAI error', async () => {
    const error: unknown = await client.chat.completions
      .create(faulty('status:503'))
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );

    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(503);
    expect((error as APIError).type).toBe('server_error');
  });

  it('answers status:429 with retry-after', async () => {
    const error: unknown = await client.chat.completions
      .create(faulty('status:429'))
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );

    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).headers.get('retry-after')).toBe('1');
  });

  it('drop-after:2 makes the stream throw after two chunks', async () => {
    const stream = await client.chat.completions.create({
      ...faulty('drop-after:2'),
      stream: true,
      stream_options: { include_usage: true },
    });
    const received: ChatCompletionChunk[] = [];
    const consume = async () => {
      for await (const chunk of stream) received.push(chunk);
    };

    await expect(consume()).rejects.toThrow();
    expect(received).toHaveLength(2);
  });

  it('no-usage withholds the usage chunk that was asked for', async () => {
    const chunks = await collect(
      await client.chat.completions.create({
        ...faulty('no-usage'),
        stream: true,
        stream_options: { include_usage: true },
      }),
    );

    expect(chunks.every((chunk) => chunk.usage === null)).toBe(true);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
  });

  it('closes promptly over hung and stalled requests', async () => {
    const own = await startSimulatedUpstream();
    const ownClient = new OpenAI({
      baseURL: own.url,
      apiKey: 'sk-test',
      maxRetries: 0,
    });
    const hung = ownClient.chat.completions.create(faulty('hang'));
    const stalled = ownClient.chat.completions
      .create({ ...faulty('stall-after:1'), stream: true })
      .then(collect);
    const settled = Promise.allSettled([hung, stalled]);
    await expect.poll(() => own.requests).toBe(2);

    const started = Date.now();
    await own.close();
    const [hangOutcome, stallOutcome] = await settled;

    expect(Date.now() - started).toBeLessThan(1000);
    expect(hangOutcome.status).toBe('rejected');
    expect(stallOutcome.status).toBe('rejected');
  });
});

describe('server', () => {
  it('lists models and answers 404 elsewhere', async () => {
    const models = await client.models.list();
    expect(models.data.map((model) => model.id)).toContain(MODEL);

    const response = await fetch(`${sim.url}/embeddings`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-test' },
    });
    const body = (await response.json()) as { error: { message: string } };
    expect(response.status).toBe(404);
    expect(body.error.message).toBe('Invalid URL (POST /v1/embeddings)');
  });

  it('serves many concurrent requests and counts them', async () => {
    const before = sim.requests;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        client.chat.completions.create({
          model: MODEL,
          messages: [{ role: 'user', content: 'hi' }],
          max_tokens: (i % 16) + 1,
        }),
      ),
    );

    expect(sim.requests - before).toBe(200);
    results.forEach((completion, i) => {
      expect(completion.usage?.completion_tokens).toBe((i % 16) + 1);
    });
  });

  it('waits latencyMs before answering and chunkIntervalMs between chunks', async () => {
    const slow = await startSimulatedUpstream({
      latencyMs: 60,
      chunkIntervalMs: 20,
      tokensPerChunk: 4,
    });
    const slowClient = new OpenAI({
      baseURL: slow.url,
      apiKey: 'sk-test',
      maxRetries: 0,
    });
    try {
      const started = Date.now();
      const stream = await slowClient.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'hi' }],
        stream: true,
        max_tokens: 8,
      });
      const firstByte = Date.now() - started;
      const chunks = await collect(stream);
      const total = Date.now() - started;

      // Opening, two content chunks and the finish: three intervals.
      expect(chunks).toHaveLength(4);
      expect(firstByte).toBeGreaterThanOrEqual(55);
      expect(total).toBeGreaterThanOrEqual(60 + 3 * 20 - 10);
    } finally {
      await slow.close();
    }
  });
});

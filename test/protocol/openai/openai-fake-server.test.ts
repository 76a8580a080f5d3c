/**
 * The OpenAI fake itself: it refuses what OpenAI refuses, serves
 * recordings byte for byte, synthesises from token counts, answers
 * scripted errors, and delivers bytes re-chunked, stalled or dropped.
 */
import OpenAI, { type APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startOpenAIFake,
  type OpenAIFake,
} from '../../../src/fakes/openai/openai-fake-server.js';
import { sharedDataPresent, sharedFile } from '../../helpers/shared-data.js';
import { wireFile, wireStream } from './openai-test-helpers.js';

let fake: OpenAIFake;
let client: OpenAI;
beforeAll(async () => {
  fake = await startOpenAIFake();
  client = new OpenAI({ baseURL: fake.url, apiKey: 'sk-test', maxRetries: 0 });
});
afterAll(async () => {
  await fake.close();
});

/** POSTs a body to a path of the fake; status, headers and raw bytes. */
async function post(path: string, body: unknown, headers: object = {}) {
  const response = await fetch(`${fake.azureUrl}${path}`, {
    method: 'POST',
    headers: {
      authorization: 'Bearer sk-test',
      'content-type': 'application/json',
      ...headers,
    },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    bytes: Buffer.from(await response.arrayBuffer()),
  };
}

/** The body's network chunks, as they arrive. */
function chunksOf(response: Response): AsyncIterable<Uint8Array> {
  if (response.body === null) throw new Error('no body');
  return response.body;
}

/** Reads the whole body into `pieces`; rejects if the connection drops. */
async function bodyPieces(
  response: Response,
  pieces: Uint8Array[] = [],
): Promise<Uint8Array[]> {
  for await (const piece of chunksOf(response)) pieces.push(piece);
  return pieces;
}

const USER = [{ role: 'user', content: 'hi' }];

describe('request validation', () => {
  it.each<[string, string, unknown, string | null]>([
    [
      'an unknown role',
      '/v1/chat/completions',
      { model: 'm', messages: [{ role: 'bot', content: 'x' }] },
      'messages[0].role',
    ],
    [
      'stream_options without stream',
      '/v1/chat/completions',
      { model: 'm', messages: USER, stream_options: { include_usage: true } },
      'stream_options',
    ],
    [
      'an image part in a system message',
      '/v1/chat/completions',
      {
        model: 'm',
        messages: [
          {
            role: 'system',
            content: [{ type: 'image_url', image_url: { url: 'x' } }],
          },
        ],
      },
      'messages[0].content[0].type',
    ],
    [
      'a tool message with no tool call before it',
      '/v1/chat/completions',
      {
        model: 'm',
        messages: [...USER, { role: 'tool', tool_call_id: 'c', content: 'x' }],
      },
      'messages.[1].role',
    ],
    [
      'a tool call left unanswered',
      '/v1/chat/completions',
      {
        model: 'm',
        messages: [
          ...USER,
          {
            role: 'assistant',
            tool_calls: [
              {
                id: 'c',
                type: 'function',
                function: { name: 'f', arguments: '{}' },
              },
            ],
          },
          { role: 'user', content: 'and?' },
        ],
      },
      'messages.[1].role',
    ],
    [
      'tool_choice without tools',
      '/v1/chat/completions',
      { model: 'm', messages: USER, tool_choice: 'auto' },
      'tool_choice',
    ],
    [
      'a tool without a function',
      '/v1/chat/completions',
      { model: 'm', messages: USER, tools: [{ type: 'function' }] },
      'tools[0].function',
    ],
    [
      'a Responses output cap under 16',
      '/v1/responses',
      { model: 'm', input: 'hi', max_output_tokens: 8 },
      'max_output_tokens',
    ],
    [
      'a function_call_output with no call',
      '/v1/responses',
      {
        model: 'm',
        input: [{ type: 'function_call_output', call_id: 'c', output: 'x' }],
      },
      'input',
    ],
    [
      'a Chat-shaped tool on the Responses API',
      '/v1/responses',
      {
        model: 'm',
        input: 'hi',
        tools: [{ type: 'function', function: { name: 'f' } }],
      },
      'tools[0].name',
    ],
    [
      'an empty embeddings input',
      '/v1/embeddings',
      { model: 'e', input: [] },
      'input',
    ],
  ])('answers 400 to %s', async (_label, path, body, param) => {
    const before = fake.queued;
    const { status, bytes } = await post(path, body);
    expect(status).toBe(400);
    const error = (JSON.parse(bytes.toString()) as { error: object }).error;
    expect(error).toMatchObject({ type: 'invalid_request_error', param });
    expect(fake.queued).toBe(before);
  });

  it('answers 401 without a bearer key, and 404 off its paths', async () => {
    expect(
      (
        await post(
          '/v1/chat/completions',
          { model: 'm', messages: USER },
          { authorization: '' },
        )
      ).status,
    ).toBe(401);
    expect(
      (await post('/v1/completions', { model: 'm', prompt: 'x' })).status,
    ).toBe(404);
  });

  it('surfaces a refusal to the SDK as a BadRequestError', async () => {
    const call = client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: [{ type: 'video' } as never] }],
    });
    await expect(call).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });
});

describe('answers', () => {
  it('synthesises a default answer from the request', async () => {
    // "hello world!" is 12 bytes → 3 input tokens; max_tokens 5 → 5 out.
    const completion = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hello world!' }],
      max_tokens: 5,
    });
    expect(completion.usage).toMatchObject({
      prompt_tokens: 3,
      completion_tokens: 5,
      total_tokens: 8,
    });
    expect(completion.choices[0]?.message.content).toBe(
      'the quick brown fox jumps',
    );
  });

  it('builds OpenAI numbers from canonical classes', async () => {
    fake.enqueue({
      kind: 'synthesize',
      usage: {
        input: 8,
        cacheRead: 4000,
        cacheWrite: 12,
        output: 4,
        reasoning: 1,
      },
    });
    const completion = await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(completion.usage).toEqual({
      // 8 + 4000 + 12 = 4020, cached and written inside the prompt.
      prompt_tokens: 4020,
      completion_tokens: 4,
      total_tokens: 4024,
      prompt_tokens_details: {
        cached_tokens: 4000,
        cache_write_tokens: 12,
        audio_tokens: 0,
      },
      completion_tokens_details: {
        reasoning_tokens: 1,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    });
  });

  it('answers a scripted error with its status and retry-after', async () => {
    fake.enqueue({
      kind: 'error',
      status: 429,
      type: 'requests',
      code: 'rate_limit_exceeded',
      message: 'Rate limit reached.',
      retryAfter: 3,
    });
    const call = client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
    });
    await expect(call).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    await expect(call).rejects.toMatchObject({ code: 'rate_limit_exceeded' });
    const error = (await call.catch((e: unknown) => e)) as APIError;
    expect(error.headers?.get('retry-after')).toBe('3');
  });

  it('serves embeddings as base64 when the SDK asks for it', async () => {
    const result = await client.embeddings.create({
      model: 'text-embedding-3-small',
      input: 'abcd',
    });
    expect(result.data[0]?.embedding).toEqual([
      1 / 64,
      2 / 64,
      3 / 64,
      4 / 64,
      5 / 64,
      6 / 64,
      7 / 64,
      8 / 64,
    ]);
    expect(result.usage).toEqual({ prompt_tokens: 1, total_tokens: 1 });
  });
});

describe.skipIf(!sharedDataPresent)('recordings', () => {
  const SSE = 'openai_chat_stream_tool-call_include-usage.sse';
  const chat = { model: 'gpt-4o-mini', messages: USER, stream: true };

  it('serves a .sse recording byte for byte', async () => {
    fake.enqueue({ kind: 'recording', file: sharedFile(`wire/${SSE}`) });
    const { status, headers, bytes } = await post('/v1/chat/completions', chat);
    expect(status).toBe(200);
    expect(headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(bytes.equals(wireFile(SSE))).toBe(true);
  });

  it('rebuilds a Responses .chunks.jsonl with event lines', async () => {
    const name = 'openai_responses_stream_custom-tool.chunks.jsonl';
    fake.enqueue({ kind: 'recording', file: sharedFile(`wire/${name}`) });
    const { bytes } = await post('/v1/responses', {
      model: 'm',
      input: 'x',
      stream: true,
    });
    expect(bytes.equals(wireStream(name))).toBe(true);
    expect(
      bytes.toString().startsWith('event: response.created\ndata: {'),
    ).toBe(true);
  });

  it('serves a .json recording as its JSON value, with a chosen status', async () => {
    const name = 'openai_responses_nonstream_error.json';
    fake.enqueue({
      kind: 'recording',
      file: sharedFile(`wire/${name}`),
      status: 429,
    });
    const { status, bytes } = await post('/v1/responses', {
      model: 'm',
      input: 'x',
    });
    expect(status).toBe(429);
    expect(JSON.parse(bytes.toString())).toEqual(
      JSON.parse(wireFile(name).toString()),
    );
  });

  it('re-chunks at seeded sizes without changing a byte', async () => {
    fake.enqueue({
      kind: 'recording',
      file: sharedFile(`wire/${SSE}`),
      delivery: { chunkBytes: 7, chunkSeed: 42, chunkIntervalMs: 0 },
    });
    const response = await fetch(`${fake.url}/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: 'Bearer k',
        'content-type': 'application/json',
      },
      body: JSON.stringify(chat),
    });
    const pieces = await bodyPieces(response);
    expect(Buffer.concat(pieces).equals(wireFile(SSE))).toBe(true);
  });

  it('drops the connection after the given bytes', async () => {
    fake.enqueue({
      kind: 'recording',
      file: sharedFile(`wire/${SSE}`),
      delivery: { dropAfterBytes: 100 },
    });
    const response = await fetch(`${fake.url}/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: 'Bearer k',
        'content-type': 'application/json',
      },
      body: JSON.stringify(chat),
    });
    const pieces: Uint8Array[] = [];
    await expect(bodyPieces(response, pieces)).rejects.toThrow();
    expect(Buffer.concat(pieces).equals(wireFile(SSE).subarray(0, 100))).toBe(
      true,
    );
  });

  it('stalls after the given bytes, leaving the connection open', async () => {
    fake.enqueue({
      kind: 'recording',
      file: sharedFile(`wire/${SSE}`),
      delivery: { stallAfterBytes: 50, latencyMs: 5 },
    });
    const abort = new AbortController();
    const response = await fetch(`${fake.url}/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: 'Bearer k',
        'content-type': 'application/json',
      },
      body: JSON.stringify(chat),
      signal: abort.signal,
    });
    const body = chunksOf(response)[Symbol.asyncIterator]();
    const first = await body.next();
    expect(
      Buffer.from(first.value as Uint8Array).equals(
        wireFile(SSE).subarray(0, 50),
      ),
    ).toBe(true);
    const next = body.next();
    const waited = await Promise.race([
      next.then(() => 'data'),
      new Promise((resolve) => setTimeout(() => resolve('silence'), 100)),
    ]);
    expect(waited).toBe('silence');
    abort.abort();
    await next.catch(() => undefined);
  });
});

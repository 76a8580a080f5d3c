/**
 * The Anthropic fake, driven by the official `@anthropic-ai/sdk` and by
 * Tollgate's own AnthropicClient: synthesised answers with exact usage,
 * recordings served byte for byte, re-chunked, dropped and stalled
 * streams, scripted errors, and requests Anthropic would refuse.
 */
import { readFileSync } from 'node:fs';

import Anthropic from '@anthropic-ai/sdk';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { DecodedFrame } from '../../../src/protocol/canonical.js';
import {
  startAnthropicFake,
  type AnthropicFake,
} from '../../../src/fakes/anthropic/anthropic-fake-server.js';
import { anthropicUpstream } from '../../../src/protocol/anthropic/anthropic-upstream.js';
import { AnthropicClient } from '../../../src/providers/anthropic/anthropic-client.js';
import { UpstreamError } from '../../../src/providers/upstream-error.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import { streamBytes, WIRE_DIR } from './anthropic-recordings.js';

let fake: AnthropicFake;
let sdk: Anthropic;
const dispatcher = new Agent();

beforeAll(async () => {
  fake = await startAnthropicFake({ recordingsDir: WIRE_DIR });
  sdk = new Anthropic({
    baseURL: fake.url,
    apiKey: 'sk-ant-test',
    maxRetries: 0,
  });
});

afterAll(async () => {
  await fake.close();
  await dispatcher.close();
});

const PARAMS = {
  model: 'claude-sonnet-4-5',
  max_tokens: 64,
  messages: [{ role: 'user' as const, content: 'Hello' }],
};

const USAGE = {
  input: 10,
  cacheRead: 20,
  cacheWrite5m: 30,
  cacheWrite1h: 40,
  output: 5,
};

function client(options: { bodyTimeoutMs?: number } = {}) {
  return new AnthropicClient({
    baseUrl: fake.url,
    apiKey: 'sk-ant-tollgate',
    headersTimeoutMs: 5_000,
    bodyTimeoutMs: options.bodyTimeoutMs ?? 5_000,
    dispatcher,
    betas: ['prompt-caching-2024-07-31', 'interleaved-thinking-2025-05-14'],
  });
}

/** POSTs a body with the fake's required headers; returns raw bytes. */
async function post(body: unknown): Promise<{ status: number; bytes: Buffer }> {
  const response = await fetch(`${fake.url}/v1/messages`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': 'k',
      'anthropic-version': '2023-06-01',
    },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    bytes: Buffer.from(await response.arrayBuffer()),
  };
}

describe('synthesised answers through @anthropic-ai/sdk', () => {
  it('answers a non-streamed request with exactly the usage asked for', async () => {
    fake.enqueue({ kind: 'synthesize', usage: USAGE, text: 'Hi there' });
    const message = await sdk.messages.create(PARAMS);
    expect(message.content).toEqual([{ type: 'text', text: 'Hi there' }]);
    expect(message.usage).toMatchObject({
      input_tokens: 10,
      cache_read_input_tokens: 20,
      // 30 at 5 minutes + 40 at an hour.
      cache_creation_input_tokens: 70,
      cache_creation: {
        ephemeral_5m_input_tokens: 30,
        ephemeral_1h_input_tokens: 40,
      },
      output_tokens: 5,
    });
  });

  it('streams thinking, text and a tool call with exactly that usage', async () => {
    fake.enqueue({
      kind: 'synthesize',
      usage: USAGE,
      thinking: 'Let me think about the weather.',
      text: 'Checking the weather in Paris for you.',
      toolUse: { name: 'get_weather', input: { city: 'Paris' } },
    });
    const stream = sdk.messages.stream(PARAMS);
    const message = await stream.finalMessage();
    expect(message.content.map((block) => block.type)).toEqual([
      'thinking',
      'text',
      'tool_use',
    ]);
    expect(message.content[1]).toMatchObject({
      text: 'Checking the weather in Paris for you.',
    });
    expect(message.content[2]).toMatchObject({ input: { city: 'Paris' } });
    expect(message.stop_reason).toBe('tool_use');
    expect(message.usage).toMatchObject({
      input_tokens: 10,
      cache_read_input_tokens: 20,
      cache_creation_input_tokens: 70,
      output_tokens: 5,
    });
  });

  it('derives usage from the request when nothing is scripted', async () => {
    const message = await sdk.messages.create(PARAMS);
    // JSON.stringify(['', messages]) is
    // ["",[{"role":"user","content":"Hello"}]]: 40 bytes / 4 = 10 input;
    // output is min(max_tokens 64, 16) = 16.
    expect(message.usage).toMatchObject({
      input_tokens: 10,
      output_tokens: 16,
    });
  });
});

describe('AnthropicClient against the fake', () => {
  it('sends the headers Anthropic wants and reads its request id', async () => {
    fake.enqueue({ kind: 'synthesize', usage: USAGE });
    const body = anthropicUpstream.encodeRequest(
      {
        model: 'alias',
        system: [],
        messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
        tools: [],
        toolChoice: null,
        maxOutputTokens: 100,
        temperature: null,
        topP: null,
        stopSequences: [],
        thinkingBudgetTokens: null,
        stream: false,
        includeUsage: true,
        endUser: null,
      },
      'claude-sonnet-4-5',
    );
    const response = await client().sendChat({
      body,
      upstreamModel: 'claude-sonnet-4-5',
      stream: false,
      signal: AbortSignal.timeout(5_000),
    });
    const json: unknown = JSON.parse(await text(response.body));
    expect(response.status).toBe(200);
    expect(response.upstreamRequestId).toMatch(/^req_fake/);
    expect(anthropicUpstream.decodeResponse(json).usage).toEqual({
      inputTokens: 10,
      cacheReadTokens: 20,
      cacheWriteTokens: 30,
      cacheWrite1hTokens: 40,
      outputTokens: 5,
      reasoningTokens: 0,
      units: {},
    });
    expect(fake.requests.at(-1)?.headers).toMatchObject({
      'x-api-key': 'sk-ant-tollgate',
      'anthropic-version': '2023-06-01',
      'anthropic-beta':
        'prompt-caching-2024-07-31,interleaved-thinking-2025-05-14',
    });
  });

  it('decodes a stream cut at fixed 7-byte boundaries', async () => {
    fake.enqueue({ kind: 'synthesize', usage: USAGE, chunkBytes: 7 });
    const frames = await streamFrames({ ...PARAMS, stream: true });
    const final = frames
      .flatMap((frame) => frame.events)
      .filter((event) => event.type === 'usage' && event.final);
    expect(final).toHaveLength(1);
    expect(final[0]).toMatchObject({
      usage: { inputTokens: 10, cacheWrite1hTokens: 40, outputTokens: 5 },
    });
  });

  it('surfaces an upstream that stalls as a timeout', async () => {
    fake.enqueue({ kind: 'synthesize', usage: USAGE, stallAfterBytes: 200 });
    const response = await client({ bodyTimeoutMs: 200 }).sendChat({
      body: { ...PARAMS, stream: true },
      upstreamModel: PARAMS.model,
      stream: true,
      signal: AbortSignal.timeout(5_000),
    });
    const received: Buffer[] = [];
    await expect(
      (async () => {
        for await (const chunk of response.body) received.push(chunk as Buffer);
      })(),
    ).rejects.toThrow();
    expect(Buffer.concat(received)).toHaveLength(200);
  });

  it('answers a scripted 529 that decodeError reads as overloaded', async () => {
    fake.enqueue({
      kind: 'error',
      status: 529,
      type: 'overloaded_error',
      message: 'Overloaded',
      retryAfter: '2',
    });
    const response = await client().sendChat({
      body: PARAMS,
      upstreamModel: PARAMS.model,
      stream: false,
      signal: AbortSignal.timeout(5_000),
    });
    const info = anthropicUpstream.decodeError(
      response.status,
      response.headers,
      JSON.parse(await text(response.body)),
    );
    expect(info).toEqual({
      kind: 'overloaded',
      status: 529,
      message: 'Overloaded',
      retryAfter: '2',
      upstreamCode: 'overloaded_error',
    });
  });

  it('throws UpstreamError when nothing listens', async () => {
    const closed = await startAnthropicFake();
    await closed.close();
    const unreachable = new AnthropicClient({
      baseUrl: closed.url,
      apiKey: 'k',
      headersTimeoutMs: 1_000,
      bodyTimeoutMs: 1_000,
      dispatcher,
    });
    await expect(
      unreachable.sendChat({
        body: PARAMS,
        upstreamModel: PARAMS.model,
        stream: false,
        signal: AbortSignal.timeout(5_000),
      }),
    ).rejects.toBeInstanceOf(UpstreamError);
  });
});

describe.skipIf(!sharedDataPresent)('recordings served by the fake', () => {
  const THINKING = 'anthropic_messages_stream_thinking.sse';

  it('serves a .sse recording byte for byte', async () => {
    fake.enqueue({ kind: 'recording', file: THINKING });
    const { status, bytes } = await post({ ...PARAMS, stream: true });
    expect(status).toBe(200);
    expect(bytes.equals(readFileSync(`${WIRE_DIR}/${THINKING}`))).toBe(true);
  });

  it('rebuilds a .chunks.jsonl recording into its SSE stream', async () => {
    const file = 'anthropic_messages_stream_prompt-cache.chunks.jsonl';
    fake.enqueue({ kind: 'recording', file });
    const { bytes } = await post({ ...PARAMS, stream: true });
    expect(bytes.toString()).toMatch(
      /^event: message_start\ndata: \{"type":"message_start"/,
    );
    expect(bytes.equals(streamBytes(file))).toBe(true);
  });

  it('serves a JSON recording as its value', async () => {
    const file = 'anthropic_messages_nonstream_prompt-cache-read.response.json';
    fake.enqueue({ kind: 'recording', file });
    const message = await sdk.messages.create(PARAMS);
    expect(message.usage).toMatchObject({
      input_tokens: 2,
      cache_read_input_tokens: 1590,
      output_tokens: 4,
    });
  });

  it('serves a stream re-chunked at seeded random boundaries intact', async () => {
    fake.enqueue({
      kind: 'recording',
      file: THINKING,
      chunkSeed: 42,
      chunkIntervalMs: 0,
    });
    const message = await sdk.messages.stream(PARAMS).finalMessage();
    // From the file: message_delta says output_tokens 282, input 43.
    expect(message.usage).toMatchObject({
      input_tokens: 43,
      output_tokens: 282,
    });
    expect(message.content.map((block) => block.type)).toEqual([
      'thinking',
      'text',
    ]);
  });

  it('paces a stream, which then arrives in many pieces', async () => {
    fake.enqueue({
      kind: 'recording',
      file: 'anthropic_messages_stream_text.chunks.jsonl',
      chunkBytes: 200,
      chunkIntervalMs: 10,
    });
    const response = await client().sendChat({
      body: { ...PARAMS, stream: true },
      upstreamModel: PARAMS.model,
      stream: true,
      signal: AbortSignal.timeout(5_000),
    });
    let pieces = 0;
    const received: Buffer[] = [];
    for await (const chunk of response.body) {
      pieces++;
      received.push(chunk as Buffer);
    }
    const expected = streamBytes('anthropic_messages_stream_text.chunks.jsonl');
    expect(Buffer.concat(received).equals(expected)).toBe(true);
    // 1386 file bytes − 11 newlines = 1375 of JSON, plus per event
    // `event: ` `\n` `data: ` `\n\n` (16 × 12 = 192) and the 12 type names
    // (193): 1760 bytes, sent as 9 writes of at most 200, 10 ms apart. The
    // client reads them in several pieces (TCP may still join a few).
    expect(expected).toHaveLength(1760);
    expect(pieces).toBeGreaterThan(1);
  });

  it('drops a stream mid-way, which the SDK reports as an error', async () => {
    fake.enqueue({ kind: 'recording', file: THINKING, dropAfterBytes: 3000 });
    const stream = await sdk.messages.create({ ...PARAMS, stream: true });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const event of stream) seen.push(event.type);
      })(),
    ).rejects.toThrow();
    expect(seen[0]).toBe('message_start');
    expect(seen).not.toContain('message_delta');
  });

  it('refuses a request whose stream flag disagrees, keeping the item', async () => {
    fake.enqueue({ kind: 'recording', file: THINKING });
    const { status, bytes } = await post(PARAMS);
    expect(status).toBe(400);
    expect(JSON.parse(bytes.toString())).toMatchObject({
      type: 'error',
      error: {
        type: 'invalid_request_error',
        message: expect.stringContaining('stream: false') as string,
      },
    });
    // The refusal left the recording queued for a request that fits it.
    const retried = await post({ ...PARAMS, stream: true });
    expect(retried.status).toBe(200);
  });
});

describe('requests the fake refuses', () => {
  it('answers a request without max_tokens with a 400 the SDK types', async () => {
    const request = sdk.messages.create({
      model: 'claude-sonnet-4-5',
      messages: [{ role: 'user', content: 'Hi' }],
    } as unknown as Anthropic.MessageCreateParamsNonStreaming);
    await expect(request).rejects.toBeInstanceOf(Anthropic.BadRequestError);
    await expect(request).rejects.toMatchObject({
      status: 400,
      error: { type: 'error', error: { type: 'invalid_request_error' } },
    });
  });

  it.each<[string, unknown]>([
    ['an unknown top-level field', { ...PARAMS, max_completion_tokens: 5 }],
    [
      'an OpenAI-style system message',
      {
        ...PARAMS,
        messages: [{ role: 'system', content: [{ type: 'image' }] }],
      },
    ],
    ['a tool without input_schema', { ...PARAMS, tools: [{ name: 'f' }] }],
    [
      'a tool_use block from the user',
      {
        ...PARAMS,
        messages: [
          {
            role: 'user',
            content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }],
          },
        ],
      },
    ],
    [
      'an empty text block',
      {
        ...PARAMS,
        messages: [{ role: 'user', content: [{ type: 'text', text: '' }] }],
      },
    ],
    [
      'an OpenAI image_url block',
      {
        ...PARAMS,
        messages: [
          { role: 'user', content: [{ type: 'image_url', image_url: {} }] },
        ],
      },
    ],
  ])('answers 400 for %s', async (_label, body) => {
    const { status, bytes } = await post(body);
    expect(status).toBe(400);
    expect(JSON.parse(bytes.toString())).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error' },
    });
  });

  it('answers 401 without an x-api-key, keeping the script', async () => {
    fake.enqueue({ kind: 'synthesize', usage: USAGE, text: 'kept' });
    const response = await fetch(`${fake.url}/v1/messages`, {
      method: 'POST',
      headers: { 'anthropic-version': '2023-06-01' },
      body: JSON.stringify(PARAMS),
    });
    expect(response.status).toBe(401);
    const message = await sdk.messages.create(PARAMS);
    expect(message.content).toEqual([{ type: 'text', text: 'kept' }]);
  });
});

async function text(body: AsyncIterable<unknown>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function streamFrames(
  body: Record<string, unknown>,
): Promise<DecodedFrame[]> {
  const response = await client().sendChat({
    body,
    upstreamModel: PARAMS.model,
    stream: true,
    signal: AbortSignal.timeout(5_000),
  });
  const decoder = anthropicUpstream.createStreamDecoder();
  const frames: DecodedFrame[] = [];
  for await (const chunk of response.body) {
    frames.push(...decoder.push(chunk as Buffer));
  }
  frames.push(...decoder.end());
  return frames;
}

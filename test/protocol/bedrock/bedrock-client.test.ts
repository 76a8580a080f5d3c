/**
 * BedrockClient against the Bedrock fake: exact usage from synthesised
 * answers, the model in the path, both kinds of credentials, errors
 * resolved rather than thrown, and streams that fail midway.
 */
import type { Readable } from 'node:stream';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startBedrockFake,
  type BedrockFake,
} from '../../../src/fakes/bedrock/bedrock-fake-server.js';
import {
  BedrockClient,
  type BedrockClientOptions,
} from '../../../src/providers/bedrock/bedrock-client.js';
import { UpstreamError } from '../../../src/providers/upstream-error.js';
import type { UpstreamResponse } from '../../../src/providers/upstream.js';
import type {
  CanonicalChatRequest,
  CanonicalStreamEvent,
} from '../../../src/protocol/canonical.js';
import { bedrockUpstream } from '../../../src/protocol/bedrock/bedrock-upstream.js';
import { usage } from './bedrock-recordings.js';

const PROFILE = 'us.amazon.nova-lite-v1:0';

const REQUEST: CanonicalChatRequest = {
  model: 'cheap',
  system: ['Be brief.'],
  messages: [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'What is this?' },
        {
          type: 'image',
          source: {
            kind: 'base64',
            mediaType: 'image/png',
            data: 'iVBORw0KGgo=',
          },
        },
      ],
    },
  ],
  tools: [],
  toolChoice: null,
  maxOutputTokens: 256,
  temperature: null,
  topP: null,
  stopSequences: [],
  thinkingBudgetTokens: null,
  stream: false,
  includeUsage: true,
  endUser: null,
};

let fake: BedrockFake;
const clients: BedrockClient[] = [];

beforeAll(async () => {
  fake = await startBedrockFake();
});

afterAll(async () => {
  for (const client of clients) client.close();
  await fake.close();
});

function client(overrides: Partial<BedrockClientOptions> = {}): BedrockClient {
  const created = new BedrockClient({
    region: 'us-east-1',
    endpoint: fake.url,
    credentials: { apiKey: 'tollgate-bedrock-key' },
    headersTimeoutMs: 5_000,
    bodyTimeoutMs: 5_000,
    ...overrides,
  });
  clients.push(created);
  return created;
}

function send(
  target: BedrockClient,
  stream: boolean,
  signal = new AbortController().signal,
): Promise<UpstreamResponse> {
  return target.sendChat({
    body: bedrockUpstream.encodeRequest(REQUEST, PROFILE),
    upstreamModel: PROFILE,
    stream,
    signal,
  });
}

async function text(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function decodeStream(body: Readable): Promise<CanonicalStreamEvent[]> {
  const decoder = bedrockUpstream.createStreamDecoder();
  const events: CanonicalStreamEvent[] = [];
  for await (const event of body) {
    for (const frame of decoder.push(event as Record<string, unknown>)) {
      events.push(...frame.events);
    }
  }
  for (const frame of decoder.end()) events.push(...frame.events);
  return events;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('BedrockClient', () => {
  it('answers Converse with the exact synthesised usage', async () => {
    fake.enqueue({
      kind: 'synthesize',
      usage: { input: 120, cacheRead: 1000, cacheWrite: 30, output: 7 },
      text: 'A tiny PNG.',
    });
    const response = await send(client(), false);
    expect(response.status).toBe(200);
    expect(response.upstreamRequestId).toMatch(/^[0-9a-f-]{36}$/);
    const answer = bedrockUpstream.decodeResponse(
      JSON.parse(await text(response.body)),
    );
    expect(answer.content).toEqual([{ type: 'text', text: 'A tiny PNG.' }]);
    expect(answer.usage).toEqual(
      usage({
        inputTokens: 120,
        cacheReadTokens: 1000,
        cacheWriteTokens: 30,
        outputTokens: 7,
      }),
    );
  });

  it('streams ConverseStream as event objects, usage exact and last', async () => {
    fake.enqueue({
      kind: 'synthesize',
      usage: { input: 40, cacheRead: 8, output: 25 },
      reasoning: 'Look at the bytes.',
      text: 'A tiny PNG.',
      toolUse: { name: 'describe', input: { detail: 'high' } },
    });
    const response = await send(client(), true);
    expect(response.status).toBe(200);
    expect(response.body.readableObjectMode).toBe(true);
    const events = await decodeStream(response.body);

    expect(events.filter((event) => event.type === 'block_start')).toEqual([
      { type: 'block_start', index: 0, block: { type: 'thinking' } },
      { type: 'block_start', index: 1, block: { type: 'text' } },
      {
        type: 'block_start',
        index: 2,
        block: {
          type: 'tool_use',
          id: 'tooluse_fake0000000000000001',
          name: 'describe',
        },
      },
    ]);
    expect(events.at(-2)).toEqual({
      type: 'message_stop',
      stopReason: 'tool_use',
      stopSequence: null,
    });
    expect(events.at(-1)).toMatchObject({
      type: 'usage',
      final: true,
      usage: usage({ inputTokens: 40, cacheReadTokens: 8, outputTokens: 25 }),
    });
  });

  it('puts the inference profile in the path and sends the body as built', async () => {
    const before = fake.requests.length;
    await text((await send(client(), false)).body);
    const [request] = fake.requests.slice(before);
    // ':' is encoded by the SDK; the fake decodes it back.
    expect(request?.url).toBe('/model/us.amazon.nova-lite-v1%3A0/converse');
    // The image's bytes arrive as the base64 they started as, and the
    // model stays out of the body.
    expect(request?.body).toEqual(
      bedrockUpstream.encodeRequest(REQUEST, PROFILE),
    );
  });

  it('sends a Bedrock API key as a bearer token', async () => {
    const before = fake.requests.length;
    await text((await send(client(), false)).body);
    expect(fake.requests[before]?.headers.authorization).toBe(
      'Bearer tollgate-bedrock-key',
    );
  });

  it('signs with SigV4 when given IAM keys', async () => {
    const before = fake.requests.length;
    const signer = client({
      credentials: {
        accessKeyId: 'AKIDEXAMPLE',
        secretAccessKey: 'secret',
        sessionToken: 'session',
      },
    });
    await decodeStream((await send(signer, true)).body);
    const headers = fake.requests[before]?.headers;
    expect(headers?.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/bedrock\/aws4_request, /,
    );
    expect(headers?.['x-amz-security-token']).toBe('session');
  });

  it('resolves an error answer with its status, type and message', async () => {
    fake.enqueue({
      kind: 'error',
      status: 429,
      type: 'ThrottlingException',
      message: 'Too many requests, please wait before trying again.',
    });
    const response = await send(client(), false);
    expect(response.status).toBe(429);
    const error = bedrockUpstream.decodeError(
      response.status,
      response.headers,
      JSON.parse(await text(response.body)),
    );
    expect(error).toEqual({
      kind: 'rate_limit',
      status: 429,
      message: 'Too many requests, please wait before trying again.',
      retryAfter: null,
      upstreamCode: 'ThrottlingException',
    });
  });

  it('resolves a refused ConverseStream the same way', async () => {
    fake.enqueue({
      kind: 'error',
      status: 503,
      type: 'ServiceUnavailableException',
      message: 'Bedrock is unavailable.',
    });
    const response = await send(client(), true);
    expect(response.status).toBe(503);
    expect(response.headers['x-amzn-errortype']).toBe(
      'ServiceUnavailableException',
    );
  });

  it('ends a stream with its exception, as an event the decoder reads', async () => {
    fake.enqueue({
      kind: 'error',
      status: 429,
      type: 'ThrottlingException',
      message: 'slow down',
      inStream: true,
    });
    const response = await send(client(), true);
    const events = await decodeStream(response.body);
    expect(events.map((event) => event.type)).toEqual([
      'message_start',
      'block_start',
      'text_delta',
      'error',
    ]);
    expect(events.at(-1)).toMatchObject({
      error: { kind: 'rate_limit', message: 'slow down' },
    });
  });

  it('gets a body the fake refuses, as Bedrock would, as a 400', async () => {
    const response = await client().sendChat({
      body: { messages: REQUEST.messages, inferenceConfig: { max_tokens: 5 } },
      upstreamModel: PROFILE,
      stream: false,
      signal: new AbortController().signal,
    });
    expect(response.status).toBe(400);
    expect(response.headers['x-amzn-errortype']).toBe('ValidationException');
  });

  it('reads a stream paced in small chunks the same as a whole one', async () => {
    fake.enqueue({ kind: 'synthesize', usage: { input: 9, output: 12 } });
    const whole = await decodeStream((await send(client(), true)).body);
    fake.enqueue({
      kind: 'synthesize',
      usage: { input: 9, output: 12 },
      chunkBytes: 64,
      chunkIntervalMs: 2,
    });
    const paced = await decodeStream((await send(client(), true)).body);
    expect(paced).toEqual(whole);
    expect(paced.at(-1)).toMatchObject({
      usage: usage({ inputTokens: 9, outputTokens: 12 }),
    });
  });

  it('fails the body of a stream whose connection drops', async () => {
    fake.enqueue({
      kind: 'synthesize',
      usage: { input: 10, output: 16 },
      dropAfterBytes: 300,
    });
    const response = await send(client(), true);
    const error = await rejection(decodeStream(response.body));
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ failure: 'unavailable' });
  });

  it('times out a stream that stalls', async () => {
    fake.enqueue({
      kind: 'synthesize',
      usage: { input: 10, output: 16 },
      stallAfterBytes: 300,
    });
    const response = await send(client({ bodyTimeoutMs: 200 }), true);
    const error = await rejection(decodeStream(response.body));
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ failure: 'timeout' });
  });

  it('times out an answer that does not start', async () => {
    fake.enqueue({
      kind: 'synthesize',
      usage: { input: 1, output: 1 },
      latencyMs: 2_000,
    });
    const error = await rejection(
      send(client({ headersTimeoutMs: 100 }), false),
    );
    expect(error).toMatchObject({ name: 'UpstreamError', failure: 'timeout' });
  });

  it('stops when the caller aborts', async () => {
    fake.enqueue({
      kind: 'synthesize',
      usage: { input: 1, output: 1 },
      latencyMs: 2_000,
    });
    const controller = new AbortController();
    const pending = send(client(), false, controller.signal);
    setTimeout(() => controller.abort(), 50);
    expect(await rejection(pending)).toMatchObject({
      name: 'UpstreamError',
      failure: 'aborted',
    });
  });

  it('throws UpstreamError when nothing answers', async () => {
    const closed = await startBedrockFake();
    const url = closed.url;
    await closed.close();
    const error = await rejection(send(client({ endpoint: url }), false));
    expect(error).toMatchObject({
      name: 'UpstreamError',
      failure: 'unavailable',
    });
  });
});

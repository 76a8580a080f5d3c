/**
 * The real AWS SDK against the Bedrock fake: recordings replayed over
 * HTTP, the gateway's own Bedrock encoders parsed by the SDK, and errors
 * raised as the SDK's named exception classes.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  AccessDeniedException,
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  InternalServerException,
  ModelTimeoutException,
  ResourceNotFoundException,
  ServiceUnavailableException,
  ThrottlingException,
  ValidationException,
  type ConverseStreamOutput,
} from '@aws-sdk/client-bedrock-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startBedrockFake,
  type BedrockFake,
} from '../../../src/fakes/bedrock/bedrock-fake-server.js';
import { normalizeBedrockUsage } from '../../../src/providers/bedrock/normalize-bedrock-usage.js';
import type { ClientError } from '../../../src/protocol/canonical.js';
import { bedrockConverseStreamInbound } from '../../../src/protocol/bedrock/bedrock-inbound.js';
import { bedrockUpstream } from '../../../src/protocol/bedrock/bedrock-upstream.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import { usage, wireFile } from './bedrock-recordings.js';

const MODEL = 'us.amazon.nova-micro-v1:0';
const HELLO = [{ role: 'user' as const, content: [{ text: 'Hello!' }] }];

let fake: BedrockFake;
let sdk: BedrockRuntimeClient;

beforeAll(async () => {
  fake = await startBedrockFake();
  sdk = new BedrockRuntimeClient({
    region: 'us-east-1',
    endpoint: fake.url,
    token: { token: 'tollgate-test-key' },
    authSchemePreference: ['httpBearerAuth'],
    maxAttempts: 1,
  });
});

afterAll(async () => {
  sdk.destroy();
  await fake.close();
});

async function converseStream(): Promise<ConverseStreamOutput[]> {
  const output = await sdk.send(
    new ConverseStreamCommand({ modelId: MODEL, messages: HELLO }),
  );
  const events: ConverseStreamOutput[] = [];
  for await (const event of output.stream ?? []) events.push(event);
  return events;
}

function streamedText(events: readonly ConverseStreamOutput[]): string {
  return events
    .map((event) => event.contentBlockDelta?.delta?.text ?? '')
    .join('');
}

function lastUsage(events: readonly ConverseStreamOutput[]): unknown {
  return events.at(-1)?.metadata?.usage;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** A temporary file holding bytes, for a `recording` item. */
function tempRecording(name: string, bytes: Buffer): string {
  const file = join(mkdtempSync(join(tmpdir(), 'tollgate-bedrock-')), name);
  writeFileSync(file, bytes);
  return file;
}

describe.skipIf(!sharedDataPresent)('recordings through the AWS SDK', () => {
  it.each([
    // metadata of the binary stream: input 13, output 82 (total 95).
    ['bedrock_conversestream_nova-micro_text.eventstream.bin', 13, 82],
    ['bedrock_conversestream_nova-micro_text.events.jsonl', 13, 82],
    // vercel's decoded streams: 22 + 55 = 77 and 51 + 94 = 145.
    ['bedrock_conversestream_text.events.jsonl', 22, 55],
    ['bedrock_conversestream_reasoning.events.jsonl', 51, 94],
  ])('streams %s with input %i and output %i', async (file, input, output) => {
    fake.enqueue({ kind: 'recording', file: wireFile(file) });
    const events = await converseStream();
    expect(normalizeBedrockUsage(lastUsage(events))).toEqual(
      usage({ inputTokens: input, outputTokens: output }),
    );
    expect(Object.keys(events[0] ?? {})).toEqual(['messageStart']);
  });

  it('gives the SDK the recorded text, re-chunked at random boundaries', async () => {
    const file = wireFile(
      'bedrock_conversestream_nova-micro_text.eventstream.bin',
    );
    fake.enqueue({ kind: 'recording', file });
    const whole = await converseStream();
    fake.enqueue({ kind: 'recording', file, chunkBytes: 7, chunkSeed: 42 });
    const chunked = await converseStream();
    expect(chunked).toEqual(whole);
    expect(streamedText(whole)).toMatch(/^The capital of France is Paris\. /);
  });

  it.each([
    // 22 + 57 = 79; 2 + 5 + 1322 read = 1329; 10 + 2 + 1298 written = 1310.
    [
      'bedrock_converse_nonstream_text.json',
      usage({ inputTokens: 22, outputTokens: 57 }),
    ],
    [
      'bedrock_converse_nonstream_cache-read.response.json',
      usage({ inputTokens: 2, cacheReadTokens: 1322, outputTokens: 5 }),
    ],
    [
      'bedrock_converse_nonstream_nova-lite_cache-write.response.json',
      usage({ inputTokens: 10, cacheWriteTokens: 1298, outputTokens: 2 }),
    ],
    [
      'bedrock_converse_nonstream_nova-micro_text.response.json',
      usage({ inputTokens: 7, outputTokens: 30 }),
    ],
  ])('answers %s through Converse', async (file, expected) => {
    fake.enqueue({ kind: 'recording', file: wireFile(file) });
    const output = await sdk.send(
      new ConverseCommand({ modelId: MODEL, messages: HELLO }),
    );
    expect(normalizeBedrockUsage(output.usage)).toEqual(expected);
  });

  it('raises the recorded unknown-model error as a ValidationException', async () => {
    fake.enqueue({
      kind: 'recording',
      file: wireFile('bedrock_converse_error_unknown-model.response.json'),
      status: 400,
      errorType: 'ValidationException',
    });
    const error = await rejection(
      sdk.send(
        new ConverseCommand({
          modelId: 'us.does-not-exist-model-v1:0',
          messages: HELLO,
        }),
      ),
    );
    expect(error).toBeInstanceOf(ValidationException);
    expect((error as Error).message).toBe(
      'The provided model identifier is invalid.',
    );
  });

  it("parses the gateway stream encoder's bytes as the recorded events", async () => {
    const recorded = readFileSync(
      wireFile('bedrock_conversestream_nova-micro_text.eventstream.bin'),
    );
    const frames = bedrockUpstream.createStreamDecoder().push(recorded);
    const encoder = bedrockConverseStreamInbound.createStreamEncoder({
      requestId: 'r',
      model: MODEL,
      includeUsage: true,
    });

    // Passed through, frame by frame: what the SDK reads is the recording.
    fake.enqueue({
      kind: 'recording',
      file: tempRecording(
        'passthrough.eventstream.bin',
        Buffer.concat(frames.map((f) => encoder.passthrough(f))),
      ),
    });
    const passed = await converseStream();
    fake.enqueue({
      kind: 'recording',
      file: wireFile('bedrock_conversestream_nova-micro_text.eventstream.bin'),
    });
    expect(passed).toEqual(await converseStream());

    // Translated from canonical events: same text, same usage 13 + 82.
    const translated = Buffer.concat(
      frames.flatMap((frame) =>
        frame.events.map((event) => encoder.encode(event)),
      ),
    );
    fake.enqueue({
      kind: 'recording',
      file: tempRecording('translated.eventstream.bin', translated),
    });
    const events = await converseStream();
    expect(streamedText(events)).toBe(streamedText(passed));
    expect(events.at(-2)?.messageStop?.stopReason).toBe('end_turn');
    expect(normalizeBedrockUsage(lastUsage(events))).toEqual(
      usage({ inputTokens: 13, outputTokens: 82 }),
    );
  });
});

describe('errors through the AWS SDK', () => {
  it("raises ThrottlingException for the fake's 429", async () => {
    fake.enqueue({
      kind: 'error',
      status: 429,
      type: 'ThrottlingException',
      message: 'Too many requests, please wait before trying again.',
    });
    const error = await rejection(
      sdk.send(new ConverseCommand({ modelId: MODEL, messages: HELLO })),
    );
    expect(error).toBeInstanceOf(ThrottlingException);
    expect(error).toMatchObject({
      message: 'Too many requests, please wait before trying again.',
      $metadata: { httpStatusCode: 429 },
    });
  });

  it('raises ThrottlingException from inside a stream', async () => {
    fake.enqueue({
      kind: 'error',
      status: 429,
      type: 'ThrottlingException',
      message: 'slow down',
      inStream: true,
    });
    const output = await sdk.send(
      new ConverseStreamCommand({ modelId: MODEL, messages: HELLO }),
    );
    const seen: ConverseStreamOutput[] = [];
    const error = await rejection(
      (async () => {
        for await (const event of output.stream ?? []) seen.push(event);
      })(),
    );
    expect(error).toBeInstanceOf(ThrottlingException);
    expect(seen.map((event) => Object.keys(event)[0])).toEqual([
      'messageStart',
      'contentBlockDelta',
    ]);
  });

  const clientError = (
    kind: ClientError['kind'],
    status: number,
  ): ClientError => ({
    status,
    code: kind,
    kind,
    message: `a ${kind} error`,
    param: null,
    requestId: 'req_7',
  });

  it.each([
    ['rate_limit', 429, ThrottlingException],
    ['invalid_request', 400, ValidationException],
    ['permission', 403, AccessDeniedException],
    ['not_found', 404, ResourceNotFoundException],
    ['overloaded', 503, ServiceUnavailableException],
    ['server', 500, InternalServerException],
    ['timeout', 504, ModelTimeoutException],
  ] as const)(
    "raises the class of the gateway's %s error",
    async (kind, status, type) => {
      const encoded = bedrockConverseStreamInbound.encodeError(
        clientError(kind, status),
      );
      fake.enqueue({
        kind: 'raw',
        status: encoded.status,
        headers: encoded.headers,
        body: Buffer.from(encoded.body),
      });
      const error = await rejection(
        sdk.send(new ConverseCommand({ modelId: MODEL, messages: HELLO })),
      );
      expect(error).toBeInstanceOf(type);
      expect(error).toMatchObject({
        message: `a ${kind} error`,
        $metadata: { httpStatusCode: status, requestId: 'req_7' },
      });
    },
  );

  it("raises the class of the gateway's in-stream error", async () => {
    const encoder = bedrockConverseStreamInbound.createStreamEncoder({
      requestId: 'r',
      model: MODEL,
      includeUsage: true,
    });
    fake.enqueue({
      kind: 'raw',
      status: 200,
      headers: { 'content-type': encoder.contentType },
      body: Buffer.concat([
        encoder.encode({ type: 'message_start', id: '', model: MODEL }),
        encoder.encodeError(clientError('overloaded', 503)),
      ]),
    });
    const output = await sdk.send(
      new ConverseStreamCommand({ modelId: MODEL, messages: HELLO }),
    );
    const error = await rejection(
      (async () => {
        for await (const _event of output.stream ?? []) {
          // drain
        }
      })(),
    );
    expect(error).toBeInstanceOf(ServiceUnavailableException);
  });

  it('refuses a request Bedrock would refuse, with a ValidationException', async () => {
    const error = await rejection(
      sdk.send(new ConverseCommand({ modelId: MODEL, messages: [] })),
    );
    expect(error).toBeInstanceOf(ValidationException);
  });
});

describe('the fake over HTTP/1.1', () => {
  it('answers a plain HTTP/1.1 client, and wants credentials', async () => {
    const url = `${fake.url}/model/${encodeURIComponent(MODEL)}/converse`;
    const body = JSON.stringify({
      messages: HELLO,
      inferenceConfig: { maxTokens: 4 },
    });
    const anonymous = await fetch(url, { method: 'POST', body });
    expect(anonymous.status).toBe(403);
    expect(anonymous.headers.get('x-amzn-errortype')).toMatch(
      /^MissingAuthenticationTokenException:/,
    );

    const answer = await fetch(url, {
      method: 'POST',
      body,
      headers: {
        authorization: 'Bearer k',
        'content-type': 'application/json',
      },
    });
    expect(answer.status).toBe(200);
    // Default answer: input ceil(47 bytes of messages / 4) = 12, output
    // min(maxTokens 4, 16) = 4, cut at max_tokens; total 12 + 4 = 16.
    expect(JSON.stringify(HELLO)).toBe(
      '[{"role":"user","content":[{"text":"Hello!"}]}]',
    );
    expect(await answer.json()).toMatchObject({
      stopReason: 'max_tokens',
      usage: { inputTokens: 12, outputTokens: 4, totalTokens: 16 },
    });
  });
});

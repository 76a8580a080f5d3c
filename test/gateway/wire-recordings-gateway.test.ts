/**
 * Every recording in `../shared/data/wire` served through the real gateway
 * to the matching official SDK: `openai` for Chat Completions, Responses
 * and Azure, `@anthropic-ai/sdk` for Messages, the AWS SDK for Converse
 * and ConverseStream.
 *
 * A fake upstream of the provider's API replays the recording over real
 * HTTP (test/helpers/provider-gateway.ts). For each one the test checks
 * what the SDK parsed against the file, then reads the request back from
 * the ledger (`GET /v1/requests/{id}`) and checks its normalised usage
 * against counts worked out by hand from the file, and its cost, exact,
 * against the test price book below. The same holds for an alias with no
 * price (cost unknown, flagged), and for streams delivered a byte at a
 * time. An error recording reaches the SDK as its error class; a refused
 * request is failed with no usage, a stream that fails inside is failed
 * and metered as estimated.
 */
import { readdirSync, readFileSync } from 'node:fs';

import {
  ConverseCommand,
  ConverseStreamCommand,
  ValidationException,
  type ConverseStreamOutput,
} from '@aws-sdk/client-bedrock-runtime';
import type Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ConfigInput } from '../../src/config/config-schema.js';
import {
  PROVIDER_MODELS,
  startProviderGateway,
  type ProviderGateway,
} from '../helpers/provider-gateway.js';
import { sharedDataPresent, sharedFile } from '../helpers/shared-data.js';
import { ADMIN_TOKEN } from '../helpers/test-gateway.js';
import { usd } from '../helpers/usd.js';

// ---------------------------------------------------------------------------
// The test price book: made-up USD per 1M tokens, unlike any catalog price,
// so a cost at the shipped catalog's rates (or another model's) shows.

interface Rates {
  readonly input: string;
  readonly cacheRead: string;
  readonly cacheWrite: string;
  readonly cacheWrite1h: string;
  readonly output: string;
}

const RATES = {
  'gpt-4o': {
    input: '2.7',
    cacheRead: '0.9',
    cacheWrite: '3.1',
    cacheWrite1h: '4.3',
    output: '11.3',
  },
  'gpt-4o-mini': {
    input: '0.17',
    cacheRead: '0.07',
    cacheWrite: '0.19',
    cacheWrite1h: '0.31',
    output: '0.67',
  },
  'claude-sonnet-4-5-20250929': {
    input: '3.2',
    cacheRead: '0.35',
    cacheWrite: '3.9',
    cacheWrite1h: '6.4',
    output: '15.7',
  },
  'us.amazon.nova-lite-v1:0': {
    input: '0.061',
    cacheRead: '0.0153',
    cacheWrite: '0.0767',
    cacheWrite1h: '0.113',
    output: '0.247',
  },
  'us.anthropic.claude-sonnet-4-5-20250929-v1:0': {
    input: '3.4',
    cacheRead: '0.37',
    cacheWrite: '4.1',
    cacheWrite1h: '6.9',
    output: '16.9',
  },
} as const satisfies Record<string, Rates>;

type PricedModel = keyof typeof RATES;

/** The aliases of the provider gateway, each priced by its upstream model. */
type PricedAlias = keyof typeof PROVIDER_MODELS;

/**
 * Aliases whose upstream models no price book knows, one per API: their
 * usage is metered all the same, at an unknown cost.
 */
const UNPRICED = {
  'unpriced-chat': { provider: 'openai', model: 'tollgate-unpriced-chat' },
  'unpriced-responses': {
    provider: 'openai-responses',
    model: 'tollgate-unpriced-responses',
  },
  'unpriced-claude': {
    provider: 'anthropic',
    model: 'tollgate-unpriced-claude',
  },
  'unpriced-bedrock': { provider: 'bedrock', model: 'tollgate.unpriced-v1:0' },
} as const;

type UnpricedAlias = keyof typeof UNPRICED;
type Alias = PricedAlias | UnpricedAlias;

const CONFIG: Partial<ConfigInput> = {
  prices: Object.fromEntries(
    Object.entries(RATES).map(([model, rates]) => [
      model,
      [
        {
          effectiveFrom: '2024-01-01',
          ...rates,
          source: 'wire-recordings-gateway test price book',
        },
      ],
    ]),
  ),
  // This replaces the helper's `models` whole: its aliases, configured as
  // it configures them, and the unpriced ones.
  models: Object.fromEntries(
    Object.entries({ ...PROVIDER_MODELS, ...UNPRICED }).map(([alias, d]) => [
      alias,
      { deployments: [{ provider: d.provider, model: d.model }] },
    ]),
  ),
};

// ---------------------------------------------------------------------------
// Usage as the ledger shows it, from counts worked out by hand.

/** Token counts in Tollgate's classes; each input token in exactly one. */
interface Counts {
  readonly input?: number;
  readonly cacheRead?: number;
  readonly cacheWrite?: number;
  readonly cacheWrite1h?: number;
  readonly output?: number;
  /** Of `output`, informational. */
  readonly reasoning?: number;
}

function ledgerUsage(counts: Counts) {
  return {
    input_tokens: counts.input ?? 0,
    cache_read_tokens: counts.cacheRead ?? 0,
    cache_write_tokens: counts.cacheWrite ?? 0,
    cache_write_1h_tokens: counts.cacheWrite1h ?? 0,
    output_tokens: counts.output ?? 0,
    reasoning_tokens: counts.reasoning ?? 0,
    units: {},
  };
}

/** Σ tokens × rate / 10^6 for each class, in BigInt (test/helpers/usd.ts). */
function costOf(model: PricedModel, counts: Counts): string {
  const rates: Rates = RATES[model];
  return usd(
    [counts.input ?? 0, rates.input],
    [counts.cacheRead ?? 0, rates.cacheRead],
    [counts.cacheWrite ?? 0, rates.cacheWrite],
    [counts.cacheWrite1h ?? 0, rates.cacheWrite1h],
    [counts.output ?? 0, rates.output],
  );
}

// ---------------------------------------------------------------------------
// Reading the recordings, independently of the gateway.

function wirePath(name: string): string {
  return sharedFile(`wire/${name}`);
}

function readJson(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(wirePath(name), 'utf8')) as Record<
    string,
    unknown
  >;
}

/** A `*.request.json` recording's body: a request a real client sent. */
function readRequestBody(name: string): Record<string, unknown> {
  return readJson(name)['body'] as Record<string, unknown>;
}

/**
 * A request body recorded in a `*.request.json`, read when it is sent
 * (the cases are listed before it is known that the folder is there).
 */
class RecordedRequest {
  constructor(readonly file: string) {}
}

type RequestBody = Record<string, unknown> | RecordedRequest;

function recordedRequest(name: string): RecordedRequest {
  return new RecordedRequest(name);
}

function bodyOf(request: RequestBody): Record<string, unknown> {
  return request instanceof RecordedRequest
    ? readRequestBody(request.file)
    : request;
}

/**
 * The JSON payloads of a stream recording, in order: the `data:` lines of
 * a `.sse` (less `[DONE]`), or the lines of a `.chunks.jsonl`.
 */
function recordedEvents(name: string): Record<string, unknown>[] {
  const text = readFileSync(wirePath(name), 'utf8');
  const payloads = name.endsWith('.sse')
    ? text
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice('data:'.length).trim())
    : text.split('\n').filter((line) => line.trim() !== '');
  return payloads
    .filter((payload) => payload !== '[DONE]')
    .map((payload) => JSON.parse(payload) as Record<string, unknown>);
}

/**
 * A ConverseStream recording as the AWS SDK's event objects: an
 * `.eventstream.bin` read from its decoded `.events.jsonl` sibling, each
 * `{headers, payload}` frame keyed by its `:event-type`. Less what the SDK
 * does not surface even from Bedrock itself: the random `p` padding, and
 * `usage.serverToolUsage`, a member this SDK version does not model.
 */
function recordedConverseEvents(name: string): Record<string, unknown>[] {
  const decoded = name.replace(/\.eventstream\.bin$/, '.events.jsonl');
  return recordedEvents(decoded).map((line) => {
    const headers = line['headers'] as Record<string, string> | undefined;
    const [[type, payload]] = Object.entries(
      headers === undefined
        ? line
        : { [headers[':event-type'] as string]: line['payload'] },
    ) as [[string, Record<string, unknown>]];
    const { p: _padding, ...rest } = payload;
    if (type === 'metadata') {
      const { serverToolUsage: _unmodelled, ...usage } = rest[
        'usage'
      ] as Record<string, unknown>;
      return { metadata: { ...rest, usage } };
    }
    return { [type]: rest };
  });
}

// ---------------------------------------------------------------------------
// The recordings, each with how to ask for it and what it must meter.

/** What one request through an SDK gave back. */
interface Served {
  /** The gateway's request id, as the SDK read it. */
  readonly id: string;
  /**
   * The body the SDK was asked to send, less the model, as JSON on the
   * wire (a Bedrock blob as base64).
   */
  readonly sent: Record<string, unknown>;
}

interface Recording {
  readonly file: string;
  /** The alias the recording is served under, priced by its upstream. */
  readonly alias: PricedAlias;
  readonly stream: boolean;
  /** Worked out by hand from the file. */
  readonly counts: Counts;
  /**
   * Asks for the recording through the SDK under `model` and checks what
   * the SDK parsed against the file.
   */
  send(g: ProviderGateway, model: Alias): Promise<Served>;
}

const HELLO = 'Hello';

function openAIChat(
  file: string,
  alias: PricedAlias,
  counts: Counts,
  body: RequestBody = {
    messages: [{ role: 'user', content: HELLO }],
  },
  /** Checks the streamed answer against what it says, stated by hand. */
  answer?: (chunks: readonly OpenAI.ChatCompletionChunk[]) => void,
): Recording {
  const stream = !file.endsWith('.json');
  return {
    file,
    alias,
    stream,
    counts,
    async send(g, model) {
      const request = bodyOf(body);
      if (!stream) {
        const { data, response } = await g.sdk.openai.chat.completions
          .create({
            ...request,
            model,
          } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming)
          .withResponse();
        expect(data).toEqual(readJson(file));
        return { id: requestId(response.headers), sent: request };
      }
      const sent = {
        ...request,
        stream: true,
        stream_options: { include_usage: true },
      };
      const { data, response } = await g.sdk.openai.chat.completions
        .create({
          ...sent,
          model,
        } as unknown as OpenAI.ChatCompletionCreateParamsStreaming)
        .withResponse();
      const chunks: OpenAI.ChatCompletionChunk[] = [];
      for await (const chunk of data) chunks.push(chunk);
      expect(chunks).toEqual(recordedEvents(file));
      answer?.(chunks);
      return { id: requestId(response.headers), sent };
    },
  };
}

function openAIResponses(
  file: string,
  counts: Counts,
  body: RequestBody = { input: HELLO },
  /** Checks the streamed answer against what it says, stated by hand. */
  answer?: (events: readonly OpenAI.Responses.ResponseStreamEvent[]) => void,
): Recording {
  const stream = !file.endsWith('.json');
  return {
    file,
    alias: 'gpt-4o-responses',
    stream,
    counts,
    async send(g, model) {
      const request = bodyOf(body);
      if (!stream) {
        const { data, response } = await g.sdk.openai.responses
          .create({
            ...request,
            model,
          } as unknown as OpenAI.Responses.ResponseCreateParamsNonStreaming)
          .withResponse();
        // The SDK adds `output_text`; everything recorded is there as it was.
        expect(data).toMatchObject(readJson(file));
        return { id: requestId(response.headers), sent: request };
      }
      const sent = { ...request, stream: true };
      const { data, response } = await g.sdk.openai.responses
        .create({
          ...sent,
          model,
        } as unknown as OpenAI.Responses.ResponseCreateParamsStreaming)
        .withResponse();
      const events: OpenAI.Responses.ResponseStreamEvent[] = [];
      for await (const event of data) events.push(event);
      expect(events).toEqual(recordedEvents(file));
      answer?.(events);
      return { id: requestId(response.headers), sent };
    },
  };
}

function anthropicMessages(
  file: string,
  counts: Counts,
  body: RequestBody = {
    max_tokens: 1024,
    messages: [{ role: 'user', content: HELLO }],
  },
  /** Checks the streamed answer against what it says, stated by hand. */
  answer?: (events: readonly Anthropic.RawMessageStreamEvent[]) => void,
): Recording {
  const stream = !file.endsWith('.json');
  return {
    file,
    alias: 'claude-sonnet-4-5',
    stream,
    counts,
    async send(g, model) {
      const sent = { ...bodyOf(body), stream };
      if (!stream) {
        const { data, response } = await g.sdk.anthropic.messages
          .create({
            ...sent,
            model,
          } as unknown as Anthropic.MessageCreateParamsNonStreaming)
          .withResponse();
        expect(data).toEqual(readJson(file));
        return { id: requestId(response.headers, 'request-id'), sent };
      }
      const { data, response } = await g.sdk.anthropic.messages
        .create({
          ...sent,
          model,
        } as unknown as Anthropic.MessageCreateParamsStreaming)
        .withResponse();
      const events: Anthropic.RawMessageStreamEvent[] = [];
      for await (const event of data) events.push(event);
      // The SDK skips `ping` events; every other one is there as recorded.
      expect(events).toEqual(
        recordedEvents(file).filter((event) => event['type'] !== 'ping'),
      );
      answer?.(events);
      return { id: requestId(response.headers, 'request-id'), sent };
    },
  };
}

const BEDROCK_HELLO = [{ role: 'user' as const, content: [{ text: HELLO }] }];

function bedrockConverse(
  file: string,
  alias: 'nova-lite' | 'bedrock-claude',
  counts: Counts,
  body: RequestBody = { messages: BEDROCK_HELLO },
  /** Checks the streamed answer against what it says, stated by hand. */
  answer?: (events: readonly ConverseStreamOutput[]) => void,
): Recording {
  const stream = !file.endsWith('.json');
  return {
    file,
    alias,
    stream,
    counts,
    async send(g, model) {
      const request = bodyOf(body);
      const input = {
        ...(withBlobs(request) as Record<string, unknown>),
        modelId: model,
      };
      if (!stream) {
        const output = await g.sdk.bedrock.send(
          new ConverseCommand(
            input as unknown as ConstructorParameters<
              typeof ConverseCommand
            >[0],
          ),
        );
        const recorded = readJson(file);
        expect(output.output).toEqual(recorded['output']);
        expect(output.stopReason).toBe(recorded['stopReason']);
        return { id: gatewayId(output.$metadata.requestId), sent: request };
      }
      const output = await g.sdk.bedrock.send(
        new ConverseStreamCommand(
          input as unknown as ConstructorParameters<
            typeof ConverseStreamCommand
          >[0],
        ),
      );
      const events: ConverseStreamOutput[] = [];
      for await (const event of output.stream ?? []) events.push(event);
      expect(events).toEqual(recordedConverseEvents(file));
      answer?.(events);
      return { id: gatewayId(output.$metadata.requestId), sent: request };
    },
  };
}

/**
 * A Converse body of REST JSON as the AWS SDK's input: a blob
 * (`source.bytes`, base64 on the wire) as the bytes the SDK encodes.
 */
function withBlobs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withBlobs);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, field]) => [
      key,
      key === 'bytes' && typeof field === 'string'
        ? new Uint8Array(Buffer.from(field, 'base64'))
        : withBlobs(field),
    ]),
  );
}

function chatText(chunks: readonly OpenAI.ChatCompletionChunk[]): string {
  return chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
}

function anthropicText(
  events: readonly Anthropic.RawMessageStreamEvent[],
  type: 'text_delta' | 'thinking_delta',
): string {
  return events
    .map((e) => {
      if (e.type !== 'content_block_delta') return '';
      if (e.delta.type === 'text_delta' && type === 'text_delta') {
        return e.delta.text;
      }
      if (e.delta.type === 'thinking_delta' && type === 'thinking_delta') {
        return e.delta.thinking;
      }
      return '';
    })
    .join('');
}

function converseText(
  events: readonly ConverseStreamOutput[],
  kind: 'text' | 'reasoning',
): string {
  return events
    .map((e) => {
      const delta = e.contentBlockDelta?.delta;
      if (kind === 'text') return delta?.text ?? '';
      return delta?.reasoningContent?.text ?? '';
    })
    .join('');
}

/** A gateway request id, from the header each SDK reads it from. */
function requestId(headers: Headers, name = 'x-request-id'): string {
  return gatewayId(headers.get(name));
}

/** The id as an SDK surfaced it, checked to be the gateway's. */
function gatewayId(id: string | null | undefined): string {
  expect(id).toMatch(/^req_/);
  return id ?? '';
}

const OPENAI_CHAT: readonly Recording[] = [
  // usage: prompt_tokens 16 (cached_tokens 0), completion_tokens 363
  // (reasoning_tokens 0); total 379.
  openAIChat('openai_chat_nonstream_text.json', 'gpt-4o', {
    input: 16,
    output: 363,
  }),
  // prompt_tokens 4020 holds prompt_tokens_details.cache_write_tokens 4012:
  // 8 uncached; completion_tokens 4.
  openAIChat(
    'openai_chat_nonstream_prompt-cache-write.response.json',
    'gpt-4o',
    { input: 8, cacheWrite: 4012, output: 4 },
    recordedRequest('openai_chat_nonstream_prompt-cache-write.request.json'),
  ),
  // prompt_tokens 4020 holds cached_tokens 4012: 8 uncached;
  // completion_tokens 4.
  openAIChat(
    'openai_chat_nonstream_prompt-cache-read.response.json',
    'gpt-4o',
    { input: 8, cacheRead: 4012, output: 4 },
    recordedRequest('openai_chat_nonstream_prompt-cache-read.request.json'),
  ),
  // Last chunk (choices []): prompt_tokens 16, completion_tokens 300.
  openAIChat('openai_chat_stream_text_include-usage.chunks.jsonl', 'gpt-4o', {
    input: 16,
    output: 300,
  }),
  // Usage chunk: prompt_tokens 53, completion_tokens 15.
  openAIChat(
    'openai_chat_stream_tool-call_include-usage.sse',
    'gpt-4o',
    { input: 53, output: 15 },
    recordedRequest('openai_chat_stream_tool-call_include-usage.request.json'),
    (chunks) => {
      const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
      expect(calls[0]?.function?.name).toBe('get_capital');
      expect(calls.map((c) => c.function?.arguments ?? '').join('')).toBe(
        '{"country":"UK"}',
      );
      expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('tool_calls');
    },
  ),
  // Usage chunk: prompt_tokens 78, completion_tokens 9.
  openAIChat(
    'openai_chat_stream_text_include-usage.sse',
    'gpt-4o',
    { input: 78, output: 9 },
    recordedRequest('openai_chat_stream_text_include-usage.request.json'),
    (chunks) => {
      expect(chatText(chunks)).toBe('The capital of the UK is London.');
    },
  ),
  // Azure's last chunk: prompt_tokens 15, completion_tokens 78 of which
  // reasoning_tokens 64.
  openAIChat(
    'azure-openai_chat_stream_reasoning-tokens.chunks.jsonl',
    'azure-gpt-4o-mini',
    { input: 15, output: 78, reasoning: 64 },
    undefined,
    (chunks) => {
      expect(chatText(chunks)).toBe('Capital of Denmark.');
    },
  ),
];

const OPENAI_RESPONSES: readonly Recording[] = [
  // input_tokens 7243 holds cached_tokens 3072: 4171 uncached;
  // output_tokens 423 holds reasoning_tokens 58; total 7666.
  openAIResponses('openai_responses_nonstream_cached-reasoning.json', {
    input: 4171,
    cacheRead: 3072,
    output: 423,
    reasoning: 58,
  }),
  // input_tokens 14 (cached 0), output_tokens 8; total 22.
  openAIResponses(
    'openai_responses_nonstream_simple.response.json',
    { input: 14, output: 8 },
    recordedRequest('openai_responses_nonstream_simple.request.json'),
  ),
  // input_tokens 4020 holds cache_write_tokens 4012: 8 uncached;
  // output_tokens 5.
  openAIResponses(
    'openai_responses_nonstream_prompt-cache-write.response.json',
    { input: 8, cacheWrite: 4012, output: 5 },
    recordedRequest(
      'openai_responses_nonstream_prompt-cache-write.request.json',
    ),
  ),
  // input_tokens 4020 holds cached_tokens 4012: 8 uncached; output 5.
  openAIResponses(
    'openai_responses_nonstream_prompt-cache-read.response.json',
    { input: 8, cacheRead: 4012, output: 5 },
    recordedRequest(
      'openai_responses_nonstream_prompt-cache-read.request.json',
    ),
  ),
  // response.completed usage: input_tokens 7112 holds cached_tokens 3072:
  // 4040 uncached; output_tokens 463 holds reasoning_tokens 64.
  openAIResponses('openai_responses_stream_cached-reasoning.chunks.jsonl', {
    input: 4040,
    cacheRead: 3072,
    output: 463,
    reasoning: 64,
  }),
  // response.completed usage: input_tokens 50, output_tokens 20.
  openAIResponses(
    'openai_responses_stream_custom-tool.chunks.jsonl',
    { input: 50, output: 20 },
    {
      input: 'How many users are older than 25?',
      tools: [
        {
          type: 'custom',
          name: 'write_sql',
          description: 'Write a SQL SELECT query to answer the user question.',
          format: { type: 'grammar', syntax: 'regex', definition: 'SELECT .+' },
        },
      ],
      tool_choice: 'required',
    },
    (events) => {
      const done = events.find((e) => e.type === 'response.output_item.done');
      expect(done?.item).toMatchObject({
        type: 'custom_tool_call',
        name: 'write_sql',
        input: 'SELECT * FROM users WHERE age > 25',
      });
    },
  ),
];

const ANTHROPIC: readonly Recording[] = [
  // usage: input_tokens 12, cache reads and writes 0, output_tokens 29.
  anthropicMessages('anthropic_messages_nonstream_text.json', {
    input: 12,
    output: 29,
  }),
  // usage: input_tokens 602, output_tokens 93; a tool_use block.
  anthropicMessages(
    'anthropic_messages_nonstream_tool-use.json',
    { input: 602, output: 93 },
    {
      max_tokens: 1024,
      messages: [{ role: 'user', content: 'Update the issue list.' }],
      tools: [
        {
          name: 'updateIssueList',
          description: 'Updates the current issue list.',
          input_schema: { type: 'object', properties: {} },
        },
      ],
    },
  ),
  // input_tokens 2 beside cache_creation_input_tokens 1590, all of them
  // cache_creation.ephemeral_5m_input_tokens; output_tokens 4 (thinking 0).
  anthropicMessages(
    'anthropic_messages_nonstream_prompt-cache-write.response.json',
    { input: 2, cacheWrite: 1590, output: 4 },
    recordedRequest(
      'anthropic_messages_nonstream_prompt-cache-write.request.json',
    ),
  ),
  // input_tokens 2 beside cache_read_input_tokens 1590; output_tokens 4.
  anthropicMessages(
    'anthropic_messages_nonstream_prompt-cache-read.response.json',
    { input: 2, cacheRead: 1590, output: 4 },
    recordedRequest(
      'anthropic_messages_nonstream_prompt-cache-read.request.json',
    ),
  ),
  // message_start input_tokens 12; message_delta input_tokens 12,
  // output_tokens 30.
  anthropicMessages(
    'anthropic_messages_stream_text.chunks.jsonl',
    { input: 12, output: 30 },
    undefined,
    (events) => {
      expect(anthropicText(events, 'text_delta')).toBe(
        "Hello! I'm doing well, thank you for asking. How are you doing " +
          'today? Is there anything I can help you with?',
      );
    },
  ),
  // message_start input_tokens 565; message_delta output_tokens 48.
  anthropicMessages(
    'anthropic_messages_stream_tool-use.chunks.jsonl',
    { input: 565, output: 48 },
    {
      max_tokens: 1024,
      messages: [{ role: 'user', content: 'Update the issue list.' }],
      tools: [
        {
          name: 'updateIssueList',
          description: 'Updates the current issue list.',
          input_schema: { type: 'object', properties: {} },
        },
      ],
    },
    (events) => {
      const blocks = events.flatMap((e) =>
        e.type === 'content_block_start' ? [e.content_block] : [],
      );
      expect(blocks[1]).toMatchObject({
        type: 'tool_use',
        name: 'updateIssueList',
      });
      expect(events.at(-2)).toMatchObject({
        type: 'message_delta',
        delta: { stop_reason: 'tool_use' },
      });
    },
  ),
  // The final counts are message_delta's: input_tokens 6, cache_creation
  // 3337, cache_read 6289, output_tokens 198 (thinking_tokens 0). The
  // provisional message_start said 3068 writes, all ephemeral_5m, none 1h:
  // so all 3337 are 5-minute writes. server_tool_use counts are all 0.
  anthropicMessages(
    'anthropic_messages_stream_prompt-cache.chunks.jsonl',
    { input: 6, cacheRead: 6289, cacheWrite: 3337, output: 198 },
    undefined,
    (events) => {
      // Two code-execution calls run by the server, then the answer.
      const tools = events.filter(
        (e) =>
          e.type === 'content_block_start' &&
          e.content_block.type === 'server_tool_use',
      );
      expect(tools).toHaveLength(2);
      expect(anthropicText(events, 'text_delta')).toBe(
        'The sum of the squares of the numbers 1 through 12 is **650**.',
      );
    },
  ),
  // message_start input_tokens 43; message_delta output_tokens 282, the
  // thinking inside it not reported apart.
  anthropicMessages(
    'anthropic_messages_stream_thinking.sse',
    { input: 43, output: 282 },
    recordedRequest('anthropic_messages_stream_thinking.request.json'),
    (events) => {
      expect(anthropicText(events, 'thinking_delta')).toMatch(
        /^This is a straightforward question about pedestrian safety\./,
      );
      expect(
        events.some(
          (e) =>
            e.type === 'content_block_delta' &&
            e.delta.type === 'signature_delta',
        ),
      ).toBe(true);
      expect(anthropicText(events, 'text_delta')).toMatch(
        /^Here are the basic steps for safely crossing the street:/,
      );
    },
  ),
];

const BEDROCK: readonly Recording[] = [
  // inputTokens 22, outputTokens 57, cache counts 0; totalTokens 79.
  bedrockConverse('bedrock_converse_nonstream_text.json', 'bedrock-claude', {
    input: 22,
    output: 57,
  }),
  // inputTokens 51, outputTokens 78 (a reasoningContent block; Bedrock
  // does not count reasoning apart); totalTokens 129.
  bedrockConverse(
    'bedrock_converse_nonstream_reasoning.json',
    'bedrock-claude',
    { input: 51, output: 78 },
  ),
  // inputTokens 2 beside cacheWriteInputTokens 1322, outputTokens 5;
  // totalTokens 1329 = 2 + 5 + 1322.
  bedrockConverse(
    'bedrock_converse_nonstream_cache-write.response.json',
    'bedrock-claude',
    { input: 2, cacheWrite: 1322, output: 5 },
    recordedRequest('bedrock_converse_nonstream_cache-write.request.json'),
  ),
  // inputTokens 2 beside cacheReadInputTokens 1322, outputTokens 5.
  bedrockConverse(
    'bedrock_converse_nonstream_cache-read.response.json',
    'bedrock-claude',
    { input: 2, cacheRead: 1322, output: 5 },
    recordedRequest('bedrock_converse_nonstream_cache-read.request.json'),
  ),
  // Nova Lite: inputTokens 10 beside cacheWriteInputTokens 1298,
  // outputTokens 2; totalTokens 1310.
  bedrockConverse(
    'bedrock_converse_nonstream_nova-lite_cache-write.response.json',
    'nova-lite',
    { input: 10, cacheWrite: 1298, output: 2 },
    recordedRequest(
      'bedrock_converse_nonstream_nova-lite_cache-write.request.json',
    ),
  ),
  // Nova Micro: inputTokens 7, outputTokens 30, no cache fields.
  bedrockConverse(
    'bedrock_converse_nonstream_nova-micro_text.response.json',
    'nova-lite',
    { input: 7, output: 30 },
    recordedRequest('bedrock_converse_nonstream_nova-micro_text.request.json'),
  ),
  // metadata usage: inputTokens 22, outputTokens 55; totalTokens 77.
  bedrockConverse(
    'bedrock_conversestream_text.events.jsonl',
    'bedrock-claude',
    { input: 22, output: 55 },
    undefined,
    (events) => {
      expect(converseText(events, 'text')).toBe(
        'Let me count the "r"s in "strawberry":\n\n' +
          's-t-**r**-a-w-b-e-**r**-**r**-y\n\n' +
          'There are **3** r\'s in "strawberry."',
      );
    },
  ),
  // metadata usage: inputTokens 51, outputTokens 94; totalTokens 145.
  bedrockConverse(
    'bedrock_conversestream_reasoning.events.jsonl',
    'bedrock-claude',
    { input: 51, output: 94 },
    undefined,
    (events) => {
      expect(converseText(events, 'reasoning')).toBe(
        'Let me count the r\'s in "strawberry":\n\ns-t-r-a-w-b-e-r-r-y\n\n' +
          "r appears at positions 3, 8, and 9.\n\nSo there are 3 r's.",
      );
      expect(converseText(events, 'text')).toBe(
        'There are **3** r\'s in "strawberry":\n\n1. st**r**awbe**r****r**y',
      );
    },
  ),
  // The last frame, metadata: inputTokens 13, outputTokens 82; total 95.
  bedrockConverse(
    'bedrock_conversestream_nova-micro_text.eventstream.bin',
    'nova-lite',
    { input: 13, output: 82 },
    recordedRequest('bedrock_conversestream_nova-micro_text.request.json'),
    (events) => {
      expect(converseText(events, 'text')).toMatch(
        /^The capital of France is Paris\. Paris is not only the capital city/,
      );
    },
  ),
  // The same frames, decoded: metadata inputTokens 13, outputTokens 82.
  bedrockConverse(
    'bedrock_conversestream_nova-micro_text.events.jsonl',
    'nova-lite',
    { input: 13, output: 82 },
    recordedRequest('bedrock_conversestream_nova-micro_text.request.json'),
    (events) => {
      expect(converseText(events, 'text')).toMatch(
        /^The capital of France is Paris\. Paris is not only the capital city/,
      );
    },
  ),
];

const RECORDINGS: readonly Recording[] = [
  ...OPENAI_CHAT,
  ...OPENAI_RESPONSES,
  ...ANTHROPIC,
  ...BEDROCK,
];

/** The recordings that are errors, checked on their own below. */
const ERROR_RECORDINGS = [
  'openai_responses_nonstream_error.json',
  'openai_responses_stream_error.chunks.jsonl',
  'bedrock_converse_error_unknown-model.response.json',
];

// ---------------------------------------------------------------------------

interface AttemptJson {
  readonly attempt: number;
  readonly estimated: boolean;
  readonly source: string;
  readonly usage: ReturnType<typeof ledgerUsage>;
  readonly cost: string | null;
  readonly provider_cost?: string | null;
  readonly unknown_price?: readonly string[];
}

interface RequestJson {
  readonly id: string;
  readonly model: string;
  readonly deployment: string;
  readonly upstream_model: string;
  readonly stream: boolean;
  readonly state: string;
  readonly status_code: number | null;
  readonly error_code: string | null;
  readonly attempts: readonly AttemptJson[];
}

const UPSTREAM_OF: Readonly<Record<Alias, string>> = Object.fromEntries(
  Object.entries({ ...PROVIDER_MODELS, ...UNPRICED }).map(([alias, d]) => [
    alias,
    d.model,
  ]),
) as Record<Alias, string>;

describe.skipIf(!sharedDataPresent)(
  'wire recordings through the gateway to each official SDK',
  () => {
    let g: ProviderGateway;

    beforeAll(async () => {
      g = await startProviderGateway({ config: CONFIG });
    });

    afterAll(async () => {
      await g?.close();
    });

    function enqueue(
      alias: Alias,
      file: string,
      delivery: { chunkBytes?: number; chunkIntervalMs?: number } = {},
      status?: number,
    ): void {
      const path = wirePath(file);
      switch (providerOf(alias)) {
        case 'anthropic':
          g.anthropic.enqueue({ kind: 'recording', file: path, ...delivery });
          return;
        case 'bedrock':
          g.bedrock.enqueue({
            kind: 'recording',
            file: path,
            ...delivery,
            ...(status !== undefined && { status }),
          });
          return;
        default:
          g.openai.enqueue({
            kind: 'recording',
            file: path,
            delivery,
            ...(status !== undefined && { status }),
          });
      }
    }

    /**
     * The fake upstream took the request (it refuses a wrong shape with a
     * 400) as the client sent it, but for the deployment's model.
     */
    function expectSentUpstream(alias: Alias, served: Served): void {
      const model = UPSTREAM_OF[alias];
      switch (providerOf(alias)) {
        case 'anthropic':
          expect(g.anthropic.requests.at(-1)?.body).toEqual({
            ...served.sent,
            model,
          });
          return;
        case 'bedrock': {
          const request = g.bedrock.requests.at(-1);
          expect(request?.url).toMatch(
            new RegExp(`^/model/${escape(encodeURIComponent(model))}/`),
          );
          expect(request?.body).toEqual(served.sent);
          return;
        }
        default: {
          const request = g.openai.requests.at(-1);
          // Azure names the deployment in the path as well.
          if (providerOf(alias) === 'azure') {
            expect(request?.path).toBe(
              `/openai/deployments/${model}/chat/completions`,
            );
          }
          expect(request?.body).toEqual({ ...served.sent, model });
        }
      }
    }

    async function ledger(id: string, token = g.key): Promise<RequestJson> {
      const response = await fetch(`${g.url}/v1/requests/${id}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status).toBe(200);
      return (await response.json()) as RequestJson;
    }

    /** The request as the tenant and the admin see it on the ledger. */
    async function expectMetered(
      id: string,
      recording: Recording,
      counts: Counts,
      model: Alias,
    ): Promise<void> {
      const tenantView = await ledger(id);
      expect(tenantView).toMatchObject({
        id,
        model,
        upstream_model: UPSTREAM_OF[model],
        stream: recording.stream,
        state: 'settled',
        error_code: null,
      });
      const priced = model in PROVIDER_MODELS;
      const cost = priced
        ? costOf(UPSTREAM_OF[model] as PricedModel, counts)
        : null;
      expect(tenantView.attempts).toEqual([
        {
          attempt: 1,
          // One attempt: it went where the request says, and was served.
          deployment: tenantView.deployment,
          served: true,
          estimated: false,
          source: 'gateway',
          usage: ledgerUsage(counts),
          cost,
        },
      ]);

      const adminView = await ledger(id, ADMIN_TOKEN);
      expect(adminView.attempts[0]).toMatchObject({
        cost,
        provider_cost: cost,
        unknown_price: priced ? [] : ['no_price'],
      });
    }

    it('prices by the test book as worked by hand', () => {
      // The cache-write chat answer at the gpt-4o rates: 8 × 2.7 = 21.6,
      // 4012 × 3.1 = 12437.2, 4 × 11.3 = 45.2; 12504 / 10^6.
      expect(costOf('gpt-4o', { input: 8, cacheWrite: 4012, output: 4 })).toBe(
        '0.012504',
      );
    });

    it('has a case for every recording in the folder', () => {
      const files = readdirRecordings();
      expect(
        [...RECORDINGS.map((r) => r.file), ...ERROR_RECORDINGS].sort(),
      ).toEqual(files);
    });

    describe.each(RECORDINGS.map((r) => [r.file, r] as const))(
      '%s',
      (_file, recording) => {
        const { counts } = recording;

        it('reaches the SDK as recorded, metered and priced exactly', async () => {
          enqueue(recording.alias, recording.file);
          const served = await recording.send(g, recording.alias);
          expectSentUpstream(recording.alias, served);
          await expectMetered(served.id, recording, counts, recording.alias);
        });

        it('is metered with an unknown cost under an unpriced model', async () => {
          const alias = unpricedAliasOf(recording.alias);
          enqueue(alias, recording.file);
          const served = await recording.send(g, alias);
          expectSentUpstream(alias, served);
          await expectMetered(served.id, recording, counts, alias);
        });
      },
    );

    describe('a stream delivered one byte at a time', () => {
      // A sample per upstream API: every byte is its own write, a
      // millisecond apart, so the gateway reads each one on its own and
      // has to carry every event, line and frame across every boundary.
      const ONE_BYTE = { chunkBytes: 1, chunkIntervalMs: 1 };
      const sample = (file: string): Recording => {
        const recording = RECORDINGS.find((r) => r.file === file);
        if (recording === undefined) throw new Error(`no case for ${file}`);
        return recording;
      };
      const servedSplit = async (recording: Recording): Promise<void> => {
        enqueue(recording.alias, recording.file, ONE_BYTE);
        // send() checks the SDK parsed every event as recorded.
        const { id } = await recording.send(g, recording.alias);
        await expectMetered(id, recording, recording.counts, recording.alias);
      };

      it('is parsed and metered as whole, on every API', async () => {
        await Promise.all([
          // The two OpenAI APIs share one fake, and its script is in order.
          (async () => {
            await servedSplit(
              sample('openai_chat_stream_tool-call_include-usage.sse'),
            );
            await servedSplit(
              sample('openai_responses_stream_custom-tool.chunks.jsonl'),
            );
          })(),
          servedSplit(
            sample('anthropic_messages_stream_prompt-cache.chunks.jsonl'),
          ),
          servedSplit(
            sample('bedrock_conversestream_nova-micro_text.eventstream.bin'),
          ),
        ]);
      }, 120_000);
    });

    describe('the error recordings', () => {
      /** A request the upstream refused: failed, and nothing metered. */
      async function expectFailedUnmetered(
        id: string,
        alias: PricedAlias,
        stream: boolean,
        status: number,
      ): Promise<void> {
        const view = await ledger(id);
        expect(view).toMatchObject({
          id,
          model: alias,
          stream,
          state: 'failed',
          status_code: status,
        });
        expect(view.error_code).not.toBeNull();
        expect(view.attempts).toEqual([]);
      }

      it('openai_responses_nonstream_error.json: a RateLimitError, unmetered', async () => {
        // insufficient_quota is OpenAI's 429.
        enqueue(
          'gpt-4o-responses',
          'openai_responses_nonstream_error.json',
          {},
          429,
        );
        const error = await rejection(
          g.sdk.openai.responses.create({
            model: 'gpt-4o-responses',
            input: HELLO,
          }),
        );
        expect(error).toBeInstanceOf(OpenAI.RateLimitError);
        const recorded = readJson('openai_responses_nonstream_error.json')[
          'error'
        ] as Record<string, unknown>;
        expect(error).toMatchObject({
          status: 429,
          code: 'insufficient_quota',
          type: 'insufficient_quota',
          error: recorded,
        });
        const id = (error as InstanceType<typeof OpenAI.APIError>).requestID;
        await expectFailedUnmetered(
          gatewayId(id),
          'gpt-4o-responses',
          false,
          429,
        );
      });

      it('openai_responses_stream_error.chunks.jsonl: the SDK throws the error event, metered as estimated', async () => {
        enqueue(
          'gpt-4o-responses',
          'openai_responses_stream_error.chunks.jsonl',
        );
        const { data, response } = await g.sdk.openai.responses
          .create({ model: 'gpt-4o-responses', input: HELLO, stream: true })
          .withResponse();
        const events: OpenAI.Responses.ResponseStreamEvent[] = [];
        const error = await rejection(
          (async () => {
            for await (const event of data) events.push(event);
          })(),
        );
        // response.created and response.in_progress, then the `error` event.
        const recorded = recordedEvents(
          'openai_responses_stream_error.chunks.jsonl',
        );
        expect(events).toEqual(recorded.slice(0, 2));
        expect(error).toBeInstanceOf(OpenAI.APIError);
        expect(error).toMatchObject({
          code: 'insufficient_quota',
          error: recorded[2]?.['error'],
        });
        // Held until settled, the error reaches the SDK with the request
        // failed as the upstream's error (insufficient_quota is a rate
        // limit), in a stream that had begun with 200.
        const view = await ledger(requestId(response.headers));
        expect(view).toMatchObject({
          model: 'gpt-4o-responses',
          stream: true,
          state: 'failed',
          status_code: 200,
          error_code: 'rate_limited',
        });
        // No usage came (response.failed says `usage: null`), so the stream
        // is metered as one that ended early: estimated, from the prompt,
        // and no output, for nothing was delivered (DESIGN.md, "Streams").
        expect(view.attempts).toHaveLength(1);
        const [attempt] = view.attempts;
        expect(attempt).toMatchObject({
          attempt: 1,
          estimated: true,
          usage: {
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
          },
        });
        expect(attempt?.usage.input_tokens).toBeGreaterThan(0);
      });

      it('bedrock_converse_error_unknown-model.response.json: a ValidationException, unmetered', async () => {
        g.bedrock.enqueue({
          kind: 'recording',
          file: wirePath('bedrock_converse_error_unknown-model.response.json'),
          status: 400,
          errorType: 'ValidationException',
        });
        const error = await rejection(
          g.sdk.bedrock.send(
            new ConverseCommand({
              ...readRequestBody(
                'bedrock_converse_error_unknown-model.request.json',
              ),
              modelId: 'bedrock-claude',
            }),
          ),
        );
        expect(error).toBeInstanceOf(ValidationException);
        const exception = error as ValidationException;
        // The recorded body: {"message": "The provided model identifier is invalid."}
        expect(exception.message).toBe(
          'The provided model identifier is invalid.',
        );
        expect(exception.$metadata.httpStatusCode).toBe(400);
        await expectFailedUnmetered(
          gatewayId(exception.$metadata.requestId),
          'bedrock-claude',
          false,
          400,
        );
      });
    });
  },
);

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

function providerOf(alias: Alias): string {
  return alias in UNPRICED
    ? UNPRICED[alias as UnpricedAlias].provider
    : PROVIDER_MODELS[alias as PricedAlias].provider;
}

/** Text for a RegExp that matches it literally. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function unpricedAliasOf(alias: PricedAlias): UnpricedAlias {
  switch (PROVIDER_MODELS[alias].provider) {
    case 'openai':
    case 'azure':
      return 'unpriced-chat';
    case 'openai-responses':
      return 'unpriced-responses';
    case 'anthropic':
      return 'unpriced-claude';
    case 'bedrock':
      return 'unpriced-bedrock';
  }
}

/** Every answer recording of the folder (requests are not answers). */
function readdirRecordings(): string[] {
  return readdirSync(sharedFile('wire'))
    .filter((name) => name !== 'README.md' && !name.endsWith('.request.json'))
    .sort();
}

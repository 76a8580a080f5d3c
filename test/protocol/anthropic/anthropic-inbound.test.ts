/**
 * Anthropic as the API a client calls: requests validated as Anthropic
 * validates them, untranslatable features listed rather than dropped,
 * answers and errors in Anthropic's shapes, and a recorded stream
 * re-encoded from its canonical events into the same Anthropic events.
 */
import { describe, expect, it } from 'vitest';

import {
  InvalidRequestError,
  type CanonicalChatResponse,
  type ClientError,
  type DecodedFrame,
} from '../../../src/protocol/canonical.js';
import { checkAnthropicBody } from '../../../src/fakes/anthropic/check-anthropic-request.js';
import {
  anthropicInbound,
  anthropicUntranslatable,
} from '../../../src/protocol/anthropic/anthropic-inbound.js';
import { AnthropicStreamDecoder } from '../../../src/protocol/anthropic/anthropic-stream-decoder.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import {
  recordingJson,
  sseEvents,
  streamBytes,
} from './anthropic-recordings.js';

const VALID = {
  model: 'claude-alias',
  max_tokens: 256,
  messages: [{ role: 'user', content: 'Hello' }],
};

function invalid(body: unknown): InvalidRequestError {
  try {
    anthropicInbound.decodeRequest(body, null);
  } catch (error) {
    if (error instanceof InvalidRequestError) return error;
    throw error;
  }
  throw new Error('the body was accepted');
}

describe('decodeRequest', () => {
  it('decodes a minimal request', () => {
    expect(anthropicInbound.decodeRequest(VALID, null)).toEqual({
      model: 'claude-alias',
      system: [],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }],
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
    });
  });

  it('reads the end user from metadata.user_id, and stream', () => {
    const request = anthropicInbound.decodeRequest(
      { ...VALID, stream: true, metadata: { user_id: 'u-1' } },
      null,
    );
    expect([request.endUser, request.stream]).toEqual(['u-1', true]);
  });

  it.each<[string, unknown, InvalidRequestError['code'], string | null]>([
    ['a body that is not an object', [VALID], 'invalid_type', null],
    [
      'no max_tokens',
      { ...VALID, max_tokens: undefined },
      'missing_required_parameter',
      'max_tokens',
    ],
    [
      'max_tokens 0',
      { ...VALID, max_tokens: 0 },
      'invalid_value',
      'max_tokens',
    ],
    [
      'a fractional max_tokens',
      { ...VALID, max_tokens: 1.5 },
      'invalid_type',
      'max_tokens',
    ],
    [
      'a string max_tokens',
      { ...VALID, max_tokens: '256' },
      'invalid_type',
      'max_tokens',
    ],
    [
      'no model',
      { ...VALID, model: undefined },
      'missing_required_parameter',
      'model',
    ],
    [
      'no messages',
      { ...VALID, messages: undefined },
      'missing_required_parameter',
      'messages',
    ],
    ['empty messages', { ...VALID, messages: [] }, 'invalid_value', 'messages'],
    [
      'an unknown role',
      { ...VALID, messages: [{ role: 'bot', content: 'x' }] },
      'invalid_value',
      'messages.0.role',
    ],
    [
      'content that is a number',
      { ...VALID, messages: [{ role: 'user', content: 5 }] },
      'invalid_type',
      'messages.0.content',
    ],
    [
      'a text block without text',
      { ...VALID, messages: [{ role: 'user', content: [{ type: 'text' }] }] },
      'missing_required_parameter',
      'messages.0.content.0.text',
    ],
    [
      'a tool result from the assistant',
      {
        ...VALID,
        messages: [
          {
            role: 'assistant',
            content: [{ type: 'tool_result', tool_use_id: 't', content: 'x' }],
          },
        ],
      },
      'invalid_value',
      'messages.0.content.0.type',
    ],
    [
      'system blocks that are not text',
      {
        ...VALID,
        system: [{ type: 'image', source: { type: 'url', url: 'u' } }],
      },
      'invalid_value',
      'system.0.type',
    ],
    [
      'a tool without input_schema',
      { ...VALID, tools: [{ name: 'f' }] },
      'missing_required_parameter',
      'tools.0.input_schema',
    ],
    [
      'a thinking budget not under max_tokens',
      { ...VALID, thinking: { type: 'enabled', budget_tokens: 2048 } },
      'invalid_value',
      'thinking.budget_tokens',
    ],
    [
      'a temperature above 1',
      { ...VALID, temperature: 1.5 },
      'invalid_value',
      'temperature',
    ],
    ['a string stream', { ...VALID, stream: 'yes' }, 'invalid_type', 'stream'],
    [
      'tool_choice tool without a name',
      { ...VALID, tool_choice: { type: 'tool' } },
      'missing_required_parameter',
      'tool_choice.name',
    ],
  ])('refuses %s', (_label, body, code, param) => {
    const error = invalid(body);
    expect([error.code, error.param]).toEqual([code, param]);
  });

  it('lists what canonical form cannot carry, and still decodes the rest', () => {
    const body = {
      ...VALID,
      top_k: 5,
      service_tier: 'standard_only',
      system: [
        { type: 'text', text: 'S', cache_control: { type: 'ephemeral' } },
      ],
      tools: [
        { type: 'web_search_20250305', name: 'web_search' },
        { name: 'f', input_schema: { type: 'object' } },
      ],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Read this' },
            {
              type: 'document',
              source: { type: 'text', media_type: 'text/plain', data: 'x' },
            },
          ],
        },
      ],
    };
    const untranslatable = anthropicUntranslatable(body);
    expect(untranslatable.map((error) => error.param)).toEqual([
      'top_k',
      'service_tier',
      'tools.0.type',
      'system.0.cache_control',
      'messages.0.content.1.type',
    ]);
    const request = anthropicInbound.decodeRequest(body, null);
    expect(request.messages[0]?.content).toEqual([
      { type: 'text', text: 'Read this' },
    ]);
    expect(request.tools.map((tool) => tool.name)).toEqual(['f']);
  });

  it('lets the model argument name the model', () => {
    expect(anthropicInbound.decodeRequest(VALID, 'other').model).toBe('other');
  });
});

describe.skipIf(!sharedDataPresent)('recorded Anthropic requests', () => {
  function body(name: string): unknown {
    return (recordingJson(name) as { body: unknown }).body;
  }

  it('decodes the thinking request with nothing left out', () => {
    const recorded = body('anthropic_messages_stream_thinking.request.json');
    expect(anthropicUntranslatable(recorded)).toEqual([]);
    expect(anthropicInbound.decodeRequest(recorded, null)).toMatchObject({
      model: 'claude-sonnet-4-0',
      maxOutputTokens: 4096,
      thinkingBudgetTokens: 1024,
      stream: true,
    });
    expect(() => checkAnthropicBody(recorded)).not.toThrow();
  });

  it.each([
    'anthropic_messages_nonstream_prompt-cache-write.request.json',
    'anthropic_messages_nonstream_prompt-cache-read.request.json',
  ])('%s: its system message and cache_control are untranslatable', (name) => {
    const recorded = body(name);
    // messages.3 is {role: 'system', content: [{cache_control, text: 'S'}]}.
    expect(anthropicUntranslatable(recorded).map((e) => e.param)).toEqual([
      'messages.3.role',
    ]);
    expect(
      anthropicInbound.decodeRequest(recorded, null).messages,
    ).toHaveLength(3);
    expect(() => checkAnthropicBody(recorded)).not.toThrow();
  });
});

const RESPONSE: CanonicalChatResponse = {
  id: 'chatcmpl-1',
  model: 'gpt-4o-2024-08-06',
  content: [
    { type: 'thinking', text: 'hm', signature: null },
    { type: 'text', text: 'Hi' },
    { type: 'tool_use', id: 'call_1', name: 'f', input: { a: 1 } },
  ],
  stopReason: 'tool_use',
  stopSequence: null,
  usage: {
    inputTokens: 8,
    cacheReadTokens: 4012,
    cacheWriteTokens: 30,
    cacheWrite1hTokens: 40,
    outputTokens: 4,
    reasoningTokens: 0,
    units: {},
  },
  rawUsage: {},
};

describe('encodeResponse', () => {
  it("writes Anthropic's message, usage in Anthropic's classes", () => {
    expect(
      anthropicInbound.encodeResponse(RESPONSE, {
        requestId: 'req_1',
        model: 'my-alias',
      }),
    ).toEqual({
      id: 'chatcmpl-1',
      type: 'message',
      role: 'assistant',
      model: 'my-alias',
      content: [
        { type: 'thinking', thinking: 'hm', signature: '' },
        { type: 'text', text: 'Hi' },
        { type: 'tool_use', id: 'call_1', name: 'f', input: { a: 1 } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: {
        input_tokens: 8,
        // 30 written for 5 minutes + 40 for an hour.
        cache_creation_input_tokens: 70,
        cache_read_input_tokens: 4012,
        cache_creation: {
          ephemeral_5m_input_tokens: 30,
          ephemeral_1h_input_tokens: 40,
        },
        output_tokens: 4,
      },
    });
  });
});

function clientError(status: number, kind: ClientError['kind']): ClientError {
  return {
    status,
    code: 'upstream_error',
    kind,
    message: 'Something went wrong.',
    param: null,
    requestId: 'req_9',
  };
}

describe('encodeError', () => {
  it.each<[number, ClientError['kind'], string]>([
    [400, 'invalid_request', 'invalid_request_error'],
    [400, 'context_length', 'invalid_request_error'],
    [401, 'authentication', 'authentication_error'],
    [403, 'permission', 'permission_error'],
    [404, 'not_found', 'not_found_error'],
    [413, 'request_too_large', 'request_too_large'],
    [429, 'rate_limit', 'rate_limit_error'],
    [500, 'server', 'api_error'],
    [502, 'authentication', 'api_error'],
    [503, 'overloaded', 'overloaded_error'],
    [504, 'timeout', 'timeout_error'],
    [529, 'overloaded', 'overloaded_error'],
  ])('a %d %s is an %s', (status, kind, type) => {
    const encoded = anthropicInbound.encodeError(clientError(status, kind));
    expect(encoded.status).toBe(status);
    expect(encoded.headers['request-id']).toBe('req_9');
    expect(JSON.parse(encoded.body)).toEqual({
      type: 'error',
      error: { type, message: 'Something went wrong.' },
      request_id: 'req_9',
    });
  });

  it('ends a stream with an error event', () => {
    const encoder = anthropicInbound.createStreamEncoder({
      requestId: 'req_9',
      model: 'm',
      includeUsage: true,
    });
    expect(encoder.encodeError(clientError(529, 'overloaded')).toString()).toBe(
      'event: error\ndata: {"type":"error","error":{"type":' +
        '"overloaded_error","message":"Something went wrong."},' +
        '"request_id":"req_9"}\n\n',
    );
  });
});

describe('the stream encoder', () => {
  function encoder() {
    return anthropicInbound.createStreamEncoder({
      requestId: 'req_1',
      model: 'alias',
      includeUsage: true,
    });
  }

  const usage = {
    inputTokens: 5,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    outputTokens: 7,
    reasoningTokens: 0,
    units: {},
  };

  it('holds message_start until the first block, with zero usage', () => {
    const stream = encoder();
    expect(
      stream.encode({ type: 'message_start', id: 'm1', model: 'x' }),
    ).toHaveLength(0);
    const frames = sseEvents(
      stream.encode({ type: 'block_start', index: 0, block: { type: 'text' } }),
    );
    expect(frames.map((f) => f.event)).toEqual([
      'message_start',
      'content_block_start',
    ]);
    expect(frames[0]?.data).toMatchObject({
      message: {
        id: 'm1',
        model: 'alias',
        usage: { input_tokens: 0, output_tokens: 0 },
      },
    });
  });

  it('sends message_delta once both the stop and the final usage are in', () => {
    for (const order of [
      ['stop', 'usage'],
      ['usage', 'stop'],
    ]) {
      const stream = encoder();
      stream.encode({ type: 'message_start', id: 'm1', model: 'x' });
      const out = order.map((step) =>
        step === 'stop'
          ? stream.encode({
              type: 'message_stop',
              stopReason: 'max_tokens',
              stopSequence: null,
            })
          : stream.encode({ type: 'usage', usage, raw: {}, final: true }),
      );
      const last = sseEvents(Buffer.concat(out)).slice(-2);
      expect(last).toEqual([
        {
          event: 'message_delta',
          data: {
            type: 'message_delta',
            delta: { stop_reason: 'max_tokens', stop_sequence: null },
            usage: {
              input_tokens: 5,
              cache_creation_input_tokens: 0,
              cache_read_input_tokens: 0,
              output_tokens: 7,
            },
          },
        },
        { event: 'message_stop', data: { type: 'message_stop' } },
      ]);
    }
  });

  it('passes an Anthropic frame through as its exact bytes', () => {
    const raw = Buffer.from('event: ping\ndata: {"type": "ping"}\n\n');
    const frame: DecodedFrame = { raw, events: [] };
    expect(encoder().passthrough(frame)).toBe(raw);
  });
});

describe.skipIf(!sharedDataPresent)('re-encoding recorded streams', () => {
  const STREAMS = [
    'anthropic_messages_stream_text.chunks.jsonl',
    'anthropic_messages_stream_tool-use.chunks.jsonl',
    'anthropic_messages_stream_thinking.sse',
  ];

  it.each(STREAMS)('%s re-encodes into the same Anthropic events', (name) => {
    const original = streamBytes(name);
    const decoder = new AnthropicStreamDecoder();
    const stream = anthropicInbound.createStreamEncoder({
      requestId: 'req_1',
      model: 'alias',
      includeUsage: true,
    });
    const reencoded = Buffer.concat(
      [...decoder.push(original), ...decoder.end()].flatMap((frame) =>
        frame.events.map((event) => stream.encode(event)),
      ),
    );

    const expected = sseEvents(original).filter((e) => e.event !== 'ping');
    const actual = sseEvents(reencoded);
    expect(actual.map((e) => e.event)).toEqual(expected.map((e) => e.event));
    for (const [i, event] of actual.entries()) {
      const want = expected[i]?.data as SseData;
      const got = event.data as SseData;
      expect(got.type).toBe(event.event);
      if (event.event === 'message_start') {
        // Same id and counts; the model is the client's alias.
        expect(got.message?.id).toBe(want.message?.id);
        expect(got.message?.model).toBe('alias');
        const usage = got.message?.usage ?? {};
        expect(usage).toEqual(
          pick(want.message?.usage ?? {}, Object.keys(usage)),
        );
      } else if (event.event === 'message_delta') {
        expect(got.delta).toEqual(
          pick(want.delta ?? {}, ['stop_reason', 'stop_sequence']),
        );
        expect(got.usage).toEqual(want.usage);
      } else {
        expect(got).toEqual(want);
      }
    }
  });
});

/** The parts of an Anthropic event's data these comparisons read. */
interface SseData {
  readonly type: string;
  readonly message?: {
    readonly id: string;
    readonly model: string;
    readonly usage: Record<string, unknown>;
  };
  readonly delta?: Record<string, unknown>;
  readonly usage?: Record<string, unknown>;
}

function pick(object: Record<string, unknown>, keys: readonly string[]) {
  return Object.fromEntries(keys.map((key) => [key, object[key]]));
}

/**
 * Chat Completions request decoding (inbound), request encoding and answer
 * decoding (upstream), and the mapping of OpenAI error answers.
 */
import { describe, expect, it } from 'vitest';

import {
  InvalidRequestError,
  UntranslatableError,
  type CanonicalChatRequest,
} from '../../../src/protocol/canonical.js';
import {
  openAIChatInbound,
  openAIChatUntranslatable,
} from '../../../src/protocol/openai/openai-chat-inbound.js';
import { openAIChatUpstream } from '../../../src/protocol/openai/openai-chat-upstream.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import { usage, wireJson } from './openai-test-helpers.js';

const decode = (body: unknown) => openAIChatInbound.decodeRequest(body, null);

describe('openAIChatInbound.decodeRequest', () => {
  it('decodes a conversation with tools into canonical turns', () => {
    const request = decode({
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Use tools.' }] },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            {
              type: 'image_url',
              image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' },
            },
            { type: 'image_url', image_url: { url: 'https://x.test/a.png' } },
          ],
        },
        {
          role: 'assistant',
          content: 'Checking.',
          tool_calls: [
            {
              id: 'call_a',
              type: 'function',
              function: { name: 'look', arguments: '{"q":1}' },
            },
            {
              id: 'call_b',
              type: 'function',
              function: { name: 'look', arguments: '' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_a', content: 'A cat.' },
        {
          role: 'tool',
          tool_call_id: 'call_b',
          content: [{ type: 'text', text: 'Grey.' }],
        },
        { role: 'user', content: 'Thanks' },
      ],
      tools: [
        {
          type: 'function',
          function: {
            name: 'look',
            description: 'Looks.',
            parameters: { type: 'object' },
          },
        },
        { type: 'function', function: { name: 'noop' } },
      ],
      tool_choice: { type: 'function', function: { name: 'look' } },
      max_tokens: 100,
      max_completion_tokens: 50,
      temperature: 0.2,
      top_p: 0.9,
      stop: 'END',
      stream: true,
      stream_options: { include_usage: true },
      safety_identifier: 'user-1',
    });

    expect(request).toEqual<CanonicalChatRequest>({
      model: 'gpt-4o',
      system: ['Be brief.', 'Use tools.'],
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
            { type: 'tool_use', id: 'call_a', name: 'look', input: { q: 1 } },
            { type: 'tool_use', id: 'call_b', name: 'look', input: {} },
          ],
        },
        {
          // Both tool messages answer one turn: one user message.
          role: 'user',
          content: [
            {
              type: 'tool_result',
              toolUseId: 'call_a',
              content: [{ type: 'text', text: 'A cat.' }],
              isError: false,
            },
            {
              type: 'tool_result',
              toolUseId: 'call_b',
              content: [{ type: 'text', text: 'Grey.' }],
              isError: false,
            },
          ],
        },
        { role: 'user', content: [{ type: 'text', text: 'Thanks' }] },
      ],
      tools: [
        {
          name: 'look',
          description: 'Looks.',
          inputSchema: { type: 'object' },
        },
        {
          name: 'noop',
          description: null,
          inputSchema: { type: 'object', properties: {} },
        },
      ],
      toolChoice: { type: 'tool', name: 'look' },
      // max_completion_tokens wins over the older max_tokens.
      maxOutputTokens: 50,
      temperature: 0.2,
      topP: 0.9,
      stopSequences: ['END'],
      thinkingBudgetTokens: null,
      stream: true,
      includeUsage: true,
      endUser: 'user-1',
    });
  });

  it('takes the model from the route when one is given', () => {
    const request = openAIChatInbound.decodeRequest(
      { messages: [{ role: 'user', content: 'hi' }] },
      'deployment-1',
    );
    expect(request.model).toBe('deployment-1');
    expect(request.includeUsage).toBe(false);
  });

  it.each([
    ['required', { type: 'any' }],
    ['none', { type: 'none' }],
    ['auto', { type: 'auto' }],
  ])('reads tool_choice %s', (choice, expected) => {
    const request = decode({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      tools: [{ type: 'function', function: { name: 'f' } }],
      tool_choice: choice,
    });
    expect(request.toolChoice).toEqual(expected);
  });

  it.each<[string, unknown, string, string | null]>([
    ['a body that is not an object', [], 'invalid_type', 'body'],
    ['no model', { messages: [] }, 'missing_required_parameter', 'model'],
    ['no messages', { model: 'm' }, 'missing_required_parameter', 'messages'],
    [
      'empty messages',
      { model: 'm', messages: [] },
      'invalid_value',
      'messages',
    ],
    [
      'an unknown role',
      { model: 'm', messages: [{ role: 'robot', content: 'x' }] },
      'invalid_value',
      'messages[0].role',
    ],
    [
      'an unknown user part',
      {
        model: 'm',
        messages: [{ role: 'user', content: [{ type: 'video', video: {} }] }],
      },
      'invalid_value',
      'messages[0].content[0].type',
    ],
    [
      'an image part without a url',
      {
        model: 'm',
        messages: [
          { role: 'user', content: [{ type: 'image_url', image_url: {} }] },
        ],
      },
      'missing_required_parameter',
      'messages[0].content[0].image_url.url',
    ],
    [
      'a tool message without tool_call_id',
      { model: 'm', messages: [{ role: 'tool', content: 'x' }] },
      'missing_required_parameter',
      'messages[0].tool_call_id',
    ],
    [
      'a max_tokens of 0',
      { model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 0 },
      'invalid_value',
      'max_tokens',
    ],
    [
      'a stop that is a number',
      { model: 'm', messages: [{ role: 'user', content: 'x' }], stop: 3 },
      'invalid_type',
      'stop',
    ],
    [
      'an unknown tool_choice',
      {
        model: 'm',
        messages: [{ role: 'user', content: 'x' }],
        tool_choice: 'always',
      },
      'invalid_value',
      'tool_choice',
    ],
  ])('refuses %s', (_label, body, code, param) => {
    try {
      decode(body);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidRequestError);
      expect(error).toMatchObject({ code, param });
    }
  });

  it('accepts what OpenAI accepts and cannot be translated', () => {
    // Audio parts and arguments that are not JSON are OpenAI's to judge;
    // the request passes through, and translation is refused instead.
    const body = {
      model: 'm',
      messages: [
        {
          role: 'user',
          content: [
            {
              type: 'input_audio',
              input_audio: { data: 'AA==', format: 'wav' },
            },
          ],
        },
        {
          role: 'assistant',
          tool_calls: [
            {
              id: 'c',
              type: 'function',
              function: { name: 'f', arguments: '{not json' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'c', content: 'ok' },
      ],
    };
    expect(() => decode(body)).not.toThrow();
    expect(openAIChatUntranslatable(body)).toEqual([
      'messages[0].content[0]',
      'messages[1].tool_calls[0].function.arguments',
    ]);
  });
});

describe('openAIChatUntranslatable', () => {
  it('names every field another API could not honour', () => {
    expect(
      openAIChatUntranslatable({
        model: 'm',
        n: 2,
        logprobs: true,
        top_logprobs: 2,
        logit_bias: { 1: 2 },
        frequency_penalty: 0.5,
        presence_penalty: 0,
        response_format: { type: 'json_schema', json_schema: {} },
        audio: { voice: 'alloy' },
        modalities: ['text', 'audio'],
        prediction: { type: 'content', content: 'x' },
        reasoning_effort: 'high',
        parallel_tool_calls: false,
        store: true,
        service_tier: 'flex',
        seed: 7,
        tools: [
          { type: 'function', function: { name: 'f', strict: true } },
          { type: 'custom', custom: { name: 'g' } },
        ],
        messages: [
          { role: 'user', content: 'hi', name: 'ann' },
          { role: 'system', content: 'late system prompt' },
        ],
      }),
    ).toEqual([
      'n',
      'logprobs',
      'top_logprobs',
      'logit_bias',
      'frequency_penalty',
      'response_format',
      'audio',
      'modalities',
      'prediction',
      'reasoning_effort',
      'parallel_tool_calls',
      'store',
      'service_tier',
      'tools[0].function.strict',
      'tools[1].type',
      'messages[0].name',
      'messages[1].role',
    ]);
  });

  it('finds nothing in a plain request', () => {
    expect(
      openAIChatUntranslatable({
        model: 'm',
        n: 1,
        seed: 1,
        response_format: { type: 'text' },
        messages: [
          { role: 'system', content: 'x' },
          { role: 'user', content: 'y' },
        ],
      }),
    ).toEqual([]);
  });
});

const CANONICAL: CanonicalChatRequest = {
  model: 'alias',
  system: ['Be brief.'],
  messages: [
    { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
    {
      role: 'assistant',
      content: [
        { type: 'text', text: 'Let me look.' },
        { type: 'tool_use', id: 't1', name: 'look', input: { q: 'x' } },
      ],
    },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'Here:' },
        {
          type: 'tool_result',
          toolUseId: 't1',
          content: [{ type: 'text', text: 'found' }],
          isError: false,
        },
        {
          type: 'image',
          source: { kind: 'base64', mediaType: 'image/jpeg', data: 'AAAA' },
        },
      ],
    },
  ],
  tools: [{ name: 'look', description: null, inputSchema: { type: 'object' } }],
  toolChoice: { type: 'any' },
  maxOutputTokens: 32,
  temperature: null,
  topP: 0.5,
  stopSequences: ['\n\n'],
  thinkingBudgetTokens: null,
  stream: true,
  includeUsage: false,
  endUser: 'u1',
};

describe('openAIChatUpstream.encodeRequest', () => {
  it('writes a Chat body, tool results first, usage always asked for', () => {
    expect(openAIChatUpstream.encodeRequest(CANONICAL, 'gpt-4o-mini')).toEqual({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        {
          role: 'assistant',
          content: 'Let me look.',
          tool_calls: [
            {
              id: 't1',
              type: 'function',
              function: { name: 'look', arguments: '{"q":"x"}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 't1', content: 'found' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Here:' },
            {
              type: 'image_url',
              image_url: { url: 'data:image/jpeg;base64,AAAA' },
            },
          ],
        },
      ],
      tools: [
        {
          type: 'function',
          function: { name: 'look', parameters: { type: 'object' } },
        },
      ],
      tool_choice: 'required',
      max_completion_tokens: 32,
      top_p: 0.5,
      stop: ['\n\n'],
      user: 'u1',
      stream: true,
      // The client did not ask; the gateway meters from it regardless.
      stream_options: { include_usage: true },
    });
  });

  it.each<[string, Partial<CanonicalChatRequest>]>([
    ['a thinking budget', { thinkingBudgetTokens: 1024 }],
    [
      'thinking in the history',
      {
        messages: [
          {
            role: 'assistant',
            content: [{ type: 'thinking', text: 'hmm', signature: 'sig' }],
          },
        ],
      },
    ],
    [
      'a tool result marked as an error',
      {
        messages: [
          {
            role: 'user',
            content: [
              {
                type: 'tool_result',
                toolUseId: 't',
                content: [],
                isError: true,
              },
            ],
          },
        ],
      },
    ],
    [
      'an image inside a tool result',
      {
        messages: [
          {
            role: 'user',
            content: [
              {
                type: 'tool_result',
                toolUseId: 't',
                content: [
                  {
                    type: 'image',
                    source: { kind: 'url', url: 'https://x.test' },
                  },
                ],
                isError: false,
              },
            ],
          },
        ],
      },
    ],
  ])('refuses %s', (_label, change) => {
    expect(() =>
      openAIChatUpstream.encodeRequest({ ...CANONICAL, ...change }, 'm'),
    ).toThrow(UntranslatableError);
  });
});

describe.skipIf(!sharedDataPresent)('openAIChatUpstream.decodeResponse', () => {
  it('decodes the recorded text completion', () => {
    const response = openAIChatUpstream.decodeResponse(
      wireJson('openai_chat_nonstream_text.json'),
    );
    expect(response.id).toBe('chatcmpl-D8Z5f52zQqikDBEKQMQoYcWMcWPeU');
    expect(response.model).toBe('gpt-4.1-nano-2025-04-14');
    expect(response.stopReason).toBe('end_turn');
    expect(response.content).toHaveLength(1);
    expect(response.content[0]).toMatchObject({ type: 'text' });
    // prompt 16, completion 363.
    expect(response.usage).toEqual(
      usage({ inputTokens: 16, outputTokens: 363 }),
    );
  });

  it('decodes the recorded cache read: 4020 prompt, 4012 of it cached', () => {
    const response = openAIChatUpstream.decodeResponse(
      wireJson('openai_chat_nonstream_prompt-cache-read.response.json'),
    );
    expect(response.usage).toEqual(
      usage({ inputTokens: 8, cacheReadTokens: 4012, outputTokens: 4 }),
    );
  });
});

describe('openAIChatUpstream.decodeError', () => {
  const body = (code: string | null, type = 'invalid_request_error') => ({
    error: { message: 'm', type, param: null, code },
  });

  it.each<[number, unknown, string]>([
    [400, body(null), 'invalid_request'],
    [400, body('context_length_exceeded'), 'context_length'],
    [400, body('content_filter'), 'content_filter'],
    [
      400,
      {
        error: {
          message: 'filtered',
          code: 'content_filter',
          innererror: { code: 'ResponsibleAIPolicyViolation' },
        },
      },
      'content_filter',
    ],
    [401, body('invalid_api_key'), 'authentication'],
    [403, body(null, 'permission_error'), 'permission'],
    [404, body('model_not_found'), 'not_found'],
    [413, null, 'request_too_large'],
    [429, body('rate_limit_exceeded', 'requests'), 'rate_limit'],
    [500, body(null, 'server_error'), 'server'],
    [502, 'Bad Gateway', 'server'],
    [503, body(null, 'server_error'), 'overloaded'],
    [504, null, 'timeout'],
  ])('maps %i %j to %s', (status, errorBody, kind) => {
    const info = openAIChatUpstream.decodeError(status, {}, errorBody);
    expect(info.kind).toBe(kind);
    expect(info.status).toBe(status);
  });

  it('reads retry-after, else retry-after-ms rounded up to seconds', () => {
    const limited = body('rate_limit_exceeded');
    expect(
      openAIChatUpstream.decodeError(429, { 'retry-after': '7' }, limited)
        .retryAfter,
    ).toBe('7');
    expect(
      openAIChatUpstream.decodeError(429, { 'retry-after-ms': '1200' }, limited)
        .retryAfter,
    ).toBe('2');
    expect(
      openAIChatUpstream.decodeError(429, {}, limited).retryAfter,
    ).toBeNull();
  });

  it('keeps the message and code, and words one when there is none', () => {
    expect(
      openAIChatUpstream.decodeError(429, {}, body('rate_limit_exceeded')),
    ).toEqual({
      kind: 'rate_limit',
      status: 429,
      message: 'm',
      retryAfter: null,
      upstreamCode: 'rate_limit_exceeded',
    });
    expect(openAIChatUpstream.decodeError(500, {}, null).message).toBe(
      'the upstream answered with status 500',
    );
  });
});

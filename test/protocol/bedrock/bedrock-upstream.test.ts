/**
 * Bedrock as an upstream: canonical requests as Converse bodies, Converse
 * answers and errors in canonical terms, and the round trip through the
 * inbound decoder.
 */
import { describe, expect, it } from 'vitest';

import {
  UntranslatableError,
  UpstreamProtocolError,
  type CanonicalChatRequest,
} from '../../../src/protocol/canonical.js';
import { bedrockConverseInbound } from '../../../src/protocol/bedrock/bedrock-inbound.js';
import { bedrockUpstream } from '../../../src/protocol/bedrock/bedrock-upstream.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import { readJson, usage } from './bedrock-recordings.js';

const NOVA = 'us.amazon.nova-lite-v1:0';
const CLAUDE = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';

function request(
  overrides: Partial<CanonicalChatRequest> = {},
): CanonicalChatRequest {
  return {
    model: 'cheap',
    system: [],
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello!' }] }],
    tools: [],
    toolChoice: null,
    maxOutputTokens: null,
    temperature: null,
    topP: null,
    stopSequences: [],
    thinkingBudgetTokens: null,
    stream: false,
    includeUsage: true,
    endUser: null,
    ...overrides,
  };
}

/** A request that uses every canonical feature Converse can carry. */
const FULL = request({
  system: ['You are terse.', 'Answer in French.'],
  messages: [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'What is in this picture, and the weather?' },
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
    {
      role: 'assistant',
      content: [
        {
          type: 'thinking',
          text: 'A cat. Now the weather.',
          signature: 'c2ln',
        },
        {
          type: 'tool_use',
          id: 'tooluse_1',
          name: 'weather',
          input: { city: 'Paris' },
        },
      ],
    },
    {
      role: 'user',
      content: [
        {
          type: 'tool_result',
          toolUseId: 'tooluse_1',
          content: [{ type: 'text', text: '18°C' }],
          isError: false,
        },
        {
          type: 'tool_result',
          toolUseId: 'tooluse_2',
          content: [
            {
              type: 'image',
              source: { kind: 'base64', mediaType: 'image/jpeg', data: '/9j/' },
            },
          ],
          isError: true,
        },
      ],
    },
  ],
  tools: [
    {
      name: 'weather',
      description: 'The weather in a city',
      inputSchema: { type: 'object', properties: { city: { type: 'string' } } },
    },
    { name: 'clock', description: null, inputSchema: { type: 'object' } },
  ],
  toolChoice: { type: 'tool', name: 'weather' },
  maxOutputTokens: 512,
  temperature: 0.5,
  topP: 0.9,
  stopSequences: ['END'],
  thinkingBudgetTokens: 2048,
});

describe('bedrockUpstream.encodeRequest', () => {
  it('writes every canonical feature as Converse, without modelId', () => {
    expect(bedrockUpstream.encodeRequest(FULL, CLAUDE)).toEqual({
      system: [{ text: 'You are terse.' }, { text: 'Answer in French.' }],
      messages: [
        {
          role: 'user',
          content: [
            { text: 'What is in this picture, and the weather?' },
            { image: { format: 'png', source: { bytes: 'iVBORw0KGgo=' } } },
          ],
        },
        {
          role: 'assistant',
          content: [
            {
              reasoningContent: {
                reasoningText: {
                  text: 'A cat. Now the weather.',
                  signature: 'c2ln',
                },
              },
            },
            {
              toolUse: {
                toolUseId: 'tooluse_1',
                name: 'weather',
                input: { city: 'Paris' },
              },
            },
          ],
        },
        {
          role: 'user',
          content: [
            {
              toolResult: {
                toolUseId: 'tooluse_1',
                content: [{ text: '18°C' }],
              },
            },
            {
              toolResult: {
                toolUseId: 'tooluse_2',
                content: [
                  { image: { format: 'jpeg', source: { bytes: '/9j/' } } },
                ],
                status: 'error',
              },
            },
          ],
        },
      ],
      inferenceConfig: {
        maxTokens: 512,
        temperature: 0.5,
        topP: 0.9,
        stopSequences: ['END'],
      },
      toolConfig: {
        tools: [
          {
            toolSpec: {
              name: 'weather',
              description: 'The weather in a city',
              inputSchema: {
                json: {
                  type: 'object',
                  properties: { city: { type: 'string' } },
                },
              },
            },
          },
          {
            toolSpec: {
              name: 'clock',
              inputSchema: { json: { type: 'object' } },
            },
          },
        ],
        toolChoice: { tool: { name: 'weather' } },
      },
      additionalModelRequestFields: {
        thinking: { type: 'enabled', budget_tokens: 2048 },
      },
    });
  });

  it('leaves out what the request does not set', () => {
    expect(bedrockUpstream.encodeRequest(request(), NOVA)).toEqual({
      messages: [{ role: 'user', content: [{ text: 'Hello!' }] }],
    });
  });

  it.each<[string, Partial<CanonicalChatRequest>, string, string | null]>([
    [
      'an image by URL',
      {
        messages: [
          {
            role: 'user',
            content: [
              {
                type: 'image',
                source: { kind: 'url', url: 'https://x/y.png' },
              },
            ],
          },
        ],
      },
      NOVA,
      'messages[0].content[0]',
    ],
    [
      'an image format Converse lacks',
      {
        messages: [
          {
            role: 'user',
            content: [
              {
                type: 'image',
                source: {
                  kind: 'base64',
                  mediaType: 'image/bmp',
                  data: 'Qk0=',
                },
              },
            ],
          },
        ],
      },
      NOVA,
      'messages[0].content[0]',
    ],
    [
      'a thinking budget for Nova',
      { thinkingBudgetTokens: 1024 },
      NOVA,
      'thinking',
    ],
    [
      'tool_choice none with tools',
      { tools: FULL.tools, toolChoice: { type: 'none' } },
      CLAUDE,
      'tool_choice',
    ],
    [
      'a forced tool without tools',
      { toolChoice: { type: 'any' } },
      NOVA,
      'tool_choice',
    ],
  ])('refuses %s', (_label, overrides, model, param) => {
    let thrown: unknown;
    try {
      bedrockUpstream.encodeRequest(request(overrides), model);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(UntranslatableError);
    expect((thrown as UntranslatableError).param).toBe(param);
  });

  it('takes tool_choice none when there are no tools', () => {
    expect(
      bedrockUpstream.encodeRequest(
        request({ toolChoice: { type: 'none' } }),
        NOVA,
      ),
    ).not.toHaveProperty('toolConfig');
  });

  it('sends a thinking budget to Anthropic models by any id form', () => {
    for (const model of [
      'anthropic.claude-3-7-sonnet-20250219-v1:0',
      'eu.anthropic.claude-sonnet-4-20250514-v1:0',
      'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0',
    ]) {
      expect(
        bedrockUpstream.encodeRequest(
          request({ thinkingBudgetTokens: 1024 }),
          model,
        ),
      ).toHaveProperty(
        'additionalModelRequestFields.thinking.budget_tokens',
        1024,
      );
    }
  });
});

describe('canonical → Converse → canonical', () => {
  it('gives back the request it started from', () => {
    const body = bedrockUpstream.encodeRequest(FULL, CLAUDE);
    const back = bedrockConverseInbound.decodeRequest(
      JSON.parse(JSON.stringify(body)),
      'cheap',
    );
    expect(back).toEqual({ ...FULL, stream: false });
  });
});

describe.skipIf(!sharedDataPresent)(
  'bedrockUpstream.decodeResponse on recordings',
  () => {
    it('reads the text answer', () => {
      const answer = bedrockUpstream.decodeResponse(
        readJson('bedrock_converse_nonstream_text.json'),
      );
      expect(answer).toEqual({
        id: '',
        model: '',
        content: [
          {
            type: 'text',
            text:
              'Let me count the "r"s in "strawberry":\n\ns-t-**r**-a-w-b-e-' +
              '**r**-**r**-y\n\nThere are **3** "r"s in "strawberry."',
          },
        ],
        stopReason: 'end_turn',
        stopSequence: null,
        // 22 + 57 = 79.
        usage: usage({ inputTokens: 22, outputTokens: 57 }),
        rawUsage: readJson('bedrock_converse_nonstream_text.json')['usage'],
      });
    });

    it('reads the reasoning answer: thinking with its signature, then text', () => {
      const answer = bedrockUpstream.decodeResponse(
        readJson('bedrock_converse_nonstream_reasoning.json'),
      );
      expect(answer.content.map((block) => block.type)).toEqual([
        'thinking',
        'text',
      ]);
      expect(answer.content[0]).toMatchObject({
        text: 'Let me count the r\'s in "strawberry":\n\ns-t-r-a-w-b-e-r-r-y\n\nThere are 3 r\'s.',
        signature: expect.stringMatching(
          /^EvYBCkgICxABGAIqQA9E9VC377Un/,
        ) as unknown,
      });
      expect(answer.usage).toEqual(
        usage({ inputTokens: 51, outputTokens: 78 }),
      );
    });

    it('reads the cache-read answer: 2 input + 1322 read, 5 output', () => {
      const answer = bedrockUpstream.decodeResponse(
        readJson('bedrock_converse_nonstream_cache-read.response.json'),
      );
      expect(answer.content).toEqual([{ type: 'text', text: '21' }]);
      expect(answer.usage).toEqual(
        usage({ inputTokens: 2, cacheReadTokens: 1322, outputTokens: 5 }),
      );
    });

    it('reads the recorded unknown-model error as invalid_request', () => {
      // HTTP 400; the recording kept the body only, not the type header.
      expect(
        bedrockUpstream.decodeError(
          400,
          {},
          readJson('bedrock_converse_error_unknown-model.response.json'),
        ),
      ).toEqual({
        kind: 'invalid_request',
        status: 400,
        message: 'The provided model identifier is invalid.',
        retryAfter: null,
        upstreamCode: null,
      });
    });
  },
);

describe('bedrockUpstream.decodeResponse', () => {
  const answer = (content: unknown[], extra: object = {}) => ({
    output: { message: { role: 'assistant', content } },
    stopReason: 'end_turn',
    usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 },
    ...extra,
  });

  it.each([
    ['guardrail_intervened', 'content_filter'],
    ['content_filtered', 'content_filter'],
    ['max_tokens', 'max_tokens'],
    ['stop_sequence', 'stop_sequence'],
    ['tool_use', 'tool_use'],
    ['model_context_window_exceeded', 'max_tokens'],
    ['malformed_tool_use', null],
  ])('maps stop reason %s to %s', (stopReason, expected) => {
    expect(
      bedrockUpstream.decodeResponse(answer([{ text: 'x' }], { stopReason }))
        .stopReason,
    ).toBe(expected);
  });

  it('reads the stop sequence Anthropic models report', () => {
    expect(
      bedrockUpstream.decodeResponse(
        answer([{ text: 'x' }], {
          stopReason: 'stop_sequence',
          additionalModelResponseFields: { stop_sequence: 'END' },
        }),
      ).stopSequence,
    ).toBe('END');
  });

  it('reads a tool call', () => {
    expect(
      bedrockUpstream.decodeResponse(
        answer([
          { toolUse: { toolUseId: 'tooluse_9', name: 'clock', input: {} } },
        ]),
      ).content,
    ).toEqual([
      { type: 'tool_use', id: 'tooluse_9', name: 'clock', input: {} },
    ]);
  });

  it('refuses redacted reasoning, which no other API can carry', () => {
    expect(() =>
      bedrockUpstream.decodeResponse(
        answer([{ reasoningContent: { redactedContent: 'c2VjcmV0' } }]),
      ),
    ).toThrow(UntranslatableError);
  });

  it.each<[string, unknown]>([
    ['a non-object', 'hello'],
    ['no output', { stopReason: 'end_turn' }],
    ['a user role', { output: { message: { role: 'user', content: [] } } }],
    ['a block with two members', answer([{ text: 'a', image: {} }])],
    ['an unknown block', answer([{ hologram: {} }])],
  ])('refuses %s', (_label, body) => {
    expect(() => bedrockUpstream.decodeResponse(body)).toThrow(
      UpstreamProtocolError,
    );
  });
});

describe('bedrockUpstream.decodeError', () => {
  const header = (type: string) => ({
    'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
  });

  it.each([
    [429, 'ThrottlingException', 'Too many requests', 'rate_limit'],
    [503, 'ServiceUnavailableException', 'Service unavailable', 'overloaded'],
    [429, 'ModelNotReadyException', 'Model is not ready', 'overloaded'],
    [400, 'ValidationException', 'messages: field required', 'invalid_request'],
    [
      400,
      'ValidationException',
      'Input is too long for requested model.',
      'context_length',
    ],
    [
      400,
      'ValidationException',
      'Too many tokens in the prompt',
      'context_length',
    ],
    [403, 'AccessDeniedException', 'You do not have access', 'permission'],
    [
      403,
      'UnrecognizedClientException',
      'The security token is invalid',
      'authentication',
    ],
    [404, 'ResourceNotFoundException', 'Model not found', 'not_found'],
    [408, 'ModelTimeoutException', 'Model timed out', 'timeout'],
    [500, 'InternalServerException', 'Internal error', 'server'],
    [424, 'ModelErrorException', 'The model failed', 'server'],
  ])('reads %i %s as %s', (status, type, message, kind) => {
    expect(
      bedrockUpstream.decodeError(status, header(type), { message }),
    ).toEqual({
      kind,
      status,
      message,
      retryAfter: null,
      upstreamCode: type,
    });
  });

  it('reads the type from __type when the header is absent', () => {
    expect(
      bedrockUpstream.decodeError(
        429,
        { 'retry-after': '2' },
        { __type: 'com.amazon.bedrock#ThrottlingException', Message: 'slow' },
      ),
    ).toEqual({
      kind: 'rate_limit',
      status: 429,
      message: 'slow',
      retryAfter: '2',
      upstreamCode: 'ThrottlingException',
    });
  });

  it('falls back to the status for an unknown type or no body', () => {
    expect(bedrockUpstream.decodeError(503, {}, null)).toMatchObject({
      kind: 'overloaded',
      message: 'Bedrock answered 503',
    });
    expect(
      bedrockUpstream.decodeError(502, header('WeirdException'), {
        message: 'x',
      }),
    ).toMatchObject({ kind: 'server', upstreamCode: 'WeirdException' });
  });
});

/**
 * Bedrock as an inbound API: requests checked as Bedrock checks them,
 * what cannot be translated reported, and answers written as Converse.
 */
import { describe, expect, it } from 'vitest';

import {
  InvalidRequestError,
  type CanonicalChatResponse,
  type CanonicalStreamEvent,
  type ClientError,
} from '../../../src/protocol/canonical.js';
import {
  bedrockConverseInbound,
  bedrockConverseStreamInbound,
  bedrockUntranslatable,
} from '../../../src/protocol/bedrock/bedrock-inbound.js';
import { bedrockUpstream } from '../../../src/protocol/bedrock/bedrock-upstream.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import { readJson, usage } from './bedrock-recordings.js';

const MODEL = 'us.amazon.nova-lite-v1:0';
const HELLO = { messages: [{ role: 'user', content: [{ text: 'Hello!' }] }] };

describe('decodeRequest', () => {
  it('reads a minimal request, streaming or not by its path', () => {
    const expected = {
      model: MODEL,
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
    };
    expect(bedrockConverseInbound.decodeRequest(HELLO, MODEL)).toEqual(
      expected,
    );
    expect(bedrockConverseStreamInbound.decodeRequest(HELLO, MODEL)).toEqual({
      ...expected,
      stream: true,
    });
  });

  it('reads a tool result given as JSON as its text', () => {
    const request = bedrockConverseInbound.decodeRequest(
      {
        messages: [
          {
            role: 'user',
            content: [
              {
                toolResult: {
                  toolUseId: 't1',
                  content: [{ json: { temperature: 18 } }],
                },
              },
            ],
          },
        ],
      },
      MODEL,
    );
    expect(request.messages[0]?.content).toEqual([
      {
        type: 'tool_result',
        toolUseId: 't1',
        content: [{ type: 'text', text: '{"temperature":18}' }],
        isError: false,
      },
    ]);
  });

  it('reads the thinking budget from additionalModelRequestFields', () => {
    expect(
      bedrockConverseInbound.decodeRequest(
        {
          ...HELLO,
          additionalModelRequestFields: {
            thinking: { type: 'enabled', budget_tokens: 4000 },
          },
        },
        MODEL,
      ).thinkingBudgetTokens,
    ).toBe(4000);
  });

  const invalid: [
    string,
    unknown,
    string | null,
    InvalidRequestError['code'],
  ][] = [
    ['a body that is not an object', [], null, 'invalid_type'],
    ['no messages', {}, 'messages', 'missing_required_parameter'],
    [
      'messages that are not an array',
      { messages: {} },
      'messages',
      'invalid_type',
    ],
    ['empty messages', { messages: [] }, 'messages', 'invalid_value'],
    [
      'a conversation that starts with the assistant',
      { messages: [{ role: 'assistant', content: [{ text: 'hi' }] }] },
      'messages[0].role',
      'invalid_value',
    ],
    [
      'an unknown role',
      { messages: [{ role: 'system', content: [{ text: 'hi' }] }] },
      'messages[0].role',
      'invalid_value',
    ],
    [
      'empty content',
      { messages: [{ role: 'user', content: [] }] },
      'messages[0].content',
      'invalid_value',
    ],
    [
      'an unknown content block',
      { messages: [{ role: 'user', content: [{ hologram: {} }] }] },
      'messages[0].content[0]',
      'invalid_value',
    ],
    [
      'a block with two members',
      { messages: [{ role: 'user', content: [{ text: 'a', image: {} }] }] },
      'messages[0].content[0]',
      'invalid_value',
    ],
    [
      'text that is not a string',
      { messages: [{ role: 'user', content: [{ text: 42 }] }] },
      'messages[0].content[0].text',
      'invalid_type',
    ],
    [
      'an image format Bedrock lacks',
      {
        messages: [
          {
            role: 'user',
            content: [{ image: { format: 'bmp', source: { bytes: 'Qk0=' } } }],
          },
        ],
      },
      'messages[0].content[0].image.format',
      'invalid_value',
    ],
    [
      'image bytes that are not base64',
      {
        messages: [
          {
            role: 'user',
            content: [
              { image: { format: 'png', source: { bytes: 'not base64!' } } },
            ],
          },
        ],
      },
      'messages[0].content[0].image.source.bytes',
      'invalid_value',
    ],
    [
      'a toolUse without input',
      {
        messages: [
          { role: 'user', content: [{ text: 'hi' }] },
          {
            role: 'assistant',
            content: [{ toolUse: { toolUseId: 't', name: 'n' } }],
          },
        ],
      },
      'messages[1].content[0].toolUse.input',
      'invalid_value',
    ],
    [
      'a toolResult status Bedrock lacks',
      {
        messages: [
          {
            role: 'user',
            content: [
              { toolResult: { toolUseId: 't', content: [], status: 'failed' } },
            ],
          },
        ],
      },
      'messages[0].content[0].toolResult.status',
      'invalid_value',
    ],
    [
      'a string maxTokens',
      { ...HELLO, inferenceConfig: { maxTokens: '100' } },
      'inferenceConfig.maxTokens',
      'invalid_type',
    ],
    [
      'a zero maxTokens',
      { ...HELLO, inferenceConfig: { maxTokens: 0 } },
      'inferenceConfig.maxTokens',
      'invalid_value',
    ],
    [
      'a temperature above 1',
      { ...HELLO, inferenceConfig: { temperature: 1.5 } },
      'inferenceConfig.temperature',
      'invalid_value',
    ],
    [
      'a snake_case field in inferenceConfig',
      { ...HELLO, inferenceConfig: { max_tokens: 100 } },
      'inferenceConfig.max_tokens',
      'invalid_value',
    ],
    [
      'stop sequences that are not strings',
      { ...HELLO, inferenceConfig: { stopSequences: [1] } },
      'inferenceConfig.stopSequences',
      'invalid_type',
    ],
    [
      'an unknown top-level field',
      { ...HELLO, modelId: MODEL },
      'modelId',
      'invalid_value',
    ],
    [
      'empty tools',
      { ...HELLO, toolConfig: { tools: [] } },
      'toolConfig.tools',
      'invalid_value',
    ],
    [
      'a tool name with spaces',
      {
        ...HELLO,
        toolConfig: {
          tools: [
            { toolSpec: { name: 'get weather', inputSchema: { json: {} } } },
          ],
        },
      },
      'toolConfig.tools[0].toolSpec.name',
      'invalid_value',
    ],
    [
      'an unknown tool choice',
      {
        ...HELLO,
        toolConfig: {
          tools: [{ toolSpec: { name: 'clock', inputSchema: { json: {} } } }],
          toolChoice: { required: {} },
        },
      },
      'toolConfig.toolChoice',
      'invalid_value',
    ],
    [
      'a thinking block without a budget',
      {
        ...HELLO,
        additionalModelRequestFields: { thinking: { type: 'enabled' } },
      },
      'additionalModelRequestFields.thinking',
      'invalid_value',
    ],
  ];

  it.each(invalid)('refuses %s', (_label, body, param, code) => {
    let thrown: unknown;
    try {
      bedrockConverseInbound.decodeRequest(body, MODEL);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidRequestError);
    expect(thrown).toMatchObject({ param, code });
  });

  it('refuses a request without a model in its path', () => {
    expect(() => bedrockConverseInbound.decodeRequest(HELLO, null)).toThrow(
      InvalidRequestError,
    );
  });
});

describe('bedrockUntranslatable', () => {
  it('is empty for a request that translates whole', () => {
    expect(bedrockUntranslatable(HELLO)).toEqual([]);
  });

  it('names each field no other API can express', () => {
    const found = bedrockUntranslatable({
      messages: [
        {
          role: 'user',
          content: [
            { text: 'Summarise' },
            {
              document: { name: 'd', format: 'txt', source: { bytes: 'aGk=' } },
            },
            { cachePoint: { type: 'default' } },
          ],
        },
      ],
      system: [{ text: 'Be brief' }, { cachePoint: { type: 'default' } }],
      guardrailConfig: { guardrailIdentifier: 'g', guardrailVersion: '1' },
      additionalModelRequestFields: { top_k: 5 },
      requestMetadata: { team: 'search' },
    });
    expect(found.map((error) => error.param)).toEqual([
      'guardrailConfig',
      'additionalModelRequestFields.top_k',
      'system[1].cachePoint',
      'messages[0].content[1].document',
      'messages[0].content[2].cachePoint',
    ]);
  });

  it.skipIf(!sharedDataPresent)(
    'finds the document and cache points of the recorded cache request',
    () => {
      const body = readJson(
        'bedrock_converse_nonstream_cache-write.request.json',
      )['body'];
      // The recording caches its tools (a cachePoint after two toolSpecs),
      // its system prompt and two points of its message, around a document.
      expect(bedrockUntranslatable(body).map((error) => error.param)).toEqual([
        'toolConfig.tools[2].cachePoint',
        'system[1].cachePoint',
        'messages[0].content[1].document',
        'messages[0].content[3].cachePoint',
        'messages[0].content[5].cachePoint',
      ]);
      // The canonical request keeps the three text blocks, in order.
      const request = bedrockConverseInbound.decodeRequest(body, MODEL);
      expect(request.messages[0]?.content.map((block) => block.type)).toEqual([
        'text',
        'text',
        'text',
      ]);
    },
  );
});

const ANSWER: CanonicalChatResponse = {
  id: 'msg_01',
  model: 'claude-sonnet-4-5',
  content: [
    { type: 'thinking', text: 'Sum it.', signature: 'c2ln' },
    { type: 'text', text: '21' },
    { type: 'tool_use', id: 'toolu_1', name: 'calc', input: { a: 10 } },
  ],
  stopReason: 'tool_use',
  stopSequence: null,
  usage: usage({
    inputTokens: 2,
    cacheReadTokens: 1322,
    cacheWriteTokens: 100,
    cacheWrite1hTokens: 50,
    outputTokens: 5,
  }),
  rawUsage: {},
};

describe('encodeResponse', () => {
  it('writes Converse JSON, cache tokens outside inputTokens', () => {
    expect(
      bedrockConverseInbound.encodeResponse(ANSWER, {
        requestId: 'req_1',
        model: 'cheap',
      }),
    ).toEqual({
      output: {
        message: {
          role: 'assistant',
          content: [
            {
              reasoningContent: {
                reasoningText: { text: 'Sum it.', signature: 'c2ln' },
              },
            },
            { text: '21' },
            {
              toolUse: { toolUseId: 'toolu_1', name: 'calc', input: { a: 10 } },
            },
          ],
        },
      },
      stopReason: 'tool_use',
      usage: {
        inputTokens: 2,
        outputTokens: 5,
        // 2 + 5 + 1322 + (100 + 50) = 1479.
        totalTokens: 1479,
        cacheReadInputTokens: 1322,
        cacheWriteInputTokens: 150,
        cacheDetails: [
          { ttl: '1h', inputTokens: 50 },
          { ttl: '5m', inputTokens: 100 },
        ],
      },
      metrics: { latencyMs: 0 },
    });
  });

  it('reads back as the same answer through the upstream decoder', () => {
    const body = bedrockConverseInbound.encodeResponse(ANSWER, {
      requestId: 'req_1',
      model: 'cheap',
    });
    const back = bedrockUpstream.decodeResponse(body);
    expect(back.content).toEqual(ANSWER.content);
    expect(back.usage).toEqual(ANSWER.usage);
    expect(back.stopReason).toBe('tool_use');
  });
});

describe('encodeError', () => {
  const error = (kind: ClientError['kind'], status: number): ClientError => ({
    status,
    code: kind,
    kind,
    message: 'no',
    param: null,
    requestId: 'req_42',
  });

  it('names the Bedrock type in x-amzn-errortype', () => {
    expect(
      bedrockConverseInbound.encodeError(error('rate_limit', 429)),
    ).toEqual({
      status: 429,
      headers: {
        'content-type': 'application/json',
        'x-amzn-errortype':
          'ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/',
        'x-amzn-requestid': 'req_42',
      },
      body: '{"message":"no"}',
    });
  });

  it.each([
    ['invalid_request', 400, 'ValidationException'],
    ['context_length', 400, 'ValidationException'],
    ['authentication', 401, 'UnrecognizedClientException'],
    ['permission', 403, 'AccessDeniedException'],
    ['not_found', 404, 'ResourceNotFoundException'],
    ['overloaded', 503, 'ServiceUnavailableException'],
    ['server', 500, 'InternalServerException'],
    ['timeout', 504, 'ModelTimeoutException'],
  ] as const)('writes %s as %s', (kind, status, type) => {
    expect(
      bedrockConverseInbound.encodeError(error(kind, status)).headers[
        'x-amzn-errortype'
      ],
    ).toMatch(new RegExp(`^${type}:`));
  });
});

describe('the stream encoder', () => {
  it('holds final usage until messageStop, as Bedrock sends it', () => {
    const encoder = bedrockConverseStreamInbound.createStreamEncoder({
      requestId: 'r',
      model: 'm',
      includeUsage: true,
    });
    expect(encoder.contentType).toBe('application/vnd.amazon.eventstream');
    const events: CanonicalStreamEvent[] = [
      { type: 'message_start', id: 'msg', model: 'm' },
      { type: 'block_start', index: 0, block: { type: 'text' } },
      { type: 'text_delta', index: 0, text: 'Hi' },
      { type: 'block_stop', index: 0 },
      {
        type: 'usage',
        usage: usage({ inputTokens: 3, outputTokens: 1 }),
        raw: {},
        final: true,
      },
      { type: 'message_stop', stopReason: 'end_turn', stopSequence: null },
    ];
    const decoder = bedrockUpstream.createStreamDecoder();
    const raws = events.flatMap((event) =>
      decoder.push(encoder.encode(event)).map((frame) => frame.raw),
    );
    expect(raws).toEqual([
      { messageStart: { role: 'assistant' } },
      { contentBlockDelta: { contentBlockIndex: 0, delta: { text: 'Hi' } } },
      { contentBlockStop: { contentBlockIndex: 0 } },
      { messageStop: { stopReason: 'end_turn' } },
      {
        metadata: {
          usage: {
            inputTokens: 3,
            outputTokens: 1,
            totalTokens: 4,
            cacheReadInputTokens: 0,
            cacheWriteInputTokens: 0,
          },
          metrics: { latencyMs: expect.any(Number) as unknown },
        },
      },
    ]);
  });
});

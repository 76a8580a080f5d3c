/**
 * Anthropic as an upstream: canonical requests encoded into bodies that
 * Anthropic (here, the fake's independent check) accepts and that decode
 * back to the same request; answers and errors decoded.
 */
import { describe, expect, it } from 'vitest';

import {
  UntranslatableError,
  UpstreamProtocolError,
  type CanonicalChatRequest,
} from '../../../src/protocol/canonical.js';
import { checkAnthropicBody } from '../../../src/fakes/anthropic/check-anthropic-request.js';
import { decodeAnthropicRequest } from '../../../src/protocol/anthropic/decode-anthropic-request.js';
import {
  ANTHROPIC_DEFAULT_MAX_TOKENS,
  anthropicUpstream,
  decodeAnthropicMessage,
} from '../../../src/protocol/anthropic/anthropic-upstream.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import { recordingJson } from './anthropic-recordings.js';

const BASE: CanonicalChatRequest = {
  model: 'claude-alias',
  system: [],
  messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
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

/** A request using every canonical feature Anthropic can carry. */
const FULL: CanonicalChatRequest = {
  model: 'claude-sonnet-4-5',
  system: ['You are terse.', 'Answer in English.'],
  messages: [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'What is in this picture, and the weather?' },
        {
          type: 'image',
          source: { kind: 'base64', mediaType: 'image/png', data: 'iVBORw0K' },
        },
        {
          type: 'image',
          source: { kind: 'url', url: 'https://example.com/cat.jpg' },
        },
      ],
    },
    {
      role: 'assistant',
      content: [
        { type: 'thinking', text: 'A cat; call the tool.', signature: 'c2ln' },
        { type: 'text', text: 'A cat. Checking the weather.' },
        {
          type: 'tool_use',
          id: 'toolu_1',
          name: 'get_weather',
          input: { city: 'Paris' },
        },
      ],
    },
    {
      role: 'user',
      content: [
        {
          type: 'tool_result',
          toolUseId: 'toolu_1',
          content: [{ type: 'text', text: '18°C' }],
          isError: false,
        },
        {
          type: 'tool_result',
          toolUseId: 'toolu_2',
          content: [],
          isError: true,
        },
      ],
    },
  ],
  tools: [
    {
      name: 'get_weather',
      description: 'Weather for a city',
      inputSchema: { type: 'object', properties: { city: { type: 'string' } } },
    },
    {
      name: 'no_description',
      description: null,
      inputSchema: { type: 'object' },
    },
  ],
  toolChoice: { type: 'tool', name: 'get_weather' },
  maxOutputTokens: 2048,
  temperature: 1,
  topP: 0.9,
  stopSequences: ['STOP'],
  thinkingBudgetTokens: 1024,
  stream: true,
  includeUsage: true,
  endUser: 'user-42',
};

describe('encodeRequest', () => {
  it('survives a round trip canonical → Anthropic → canonical', () => {
    const body = anthropicUpstream.encodeRequest(FULL, 'claude-sonnet-4-5');
    expect(() => checkAnthropicBody(body)).not.toThrow();
    const decoded = decodeAnthropicRequest(body, null);
    expect(decoded.untranslatable).toEqual([]);
    expect(decoded.request).toEqual(FULL);
  });

  it('writes the fields Anthropic names them by', () => {
    const body = anthropicUpstream.encodeRequest(FULL, 'claude-sonnet-4-5');
    expect(body).toMatchObject({
      model: 'claude-sonnet-4-5',
      max_tokens: 2048,
      system: [
        { type: 'text', text: 'You are terse.' },
        { type: 'text', text: 'Answer in English.' },
      ],
      tools: [
        {
          name: 'get_weather',
          description: 'Weather for a city',
          input_schema: FULL.tools[0]?.inputSchema,
        },
        { name: 'no_description', input_schema: { type: 'object' } },
      ],
      tool_choice: { type: 'tool', name: 'get_weather' },
      top_p: 0.9,
      stop_sequences: ['STOP'],
      thinking: { type: 'enabled', budget_tokens: 1024 },
      stream: true,
      metadata: { user_id: 'user-42' },
    });
  });

  it('sends a single system prompt as a string, and none when empty', () => {
    expect(
      anthropicUpstream.encodeRequest({ ...BASE, system: ['Be brief.'] }, 'm')[
        'system'
      ],
    ).toBe('Be brief.');
    expect(anthropicUpstream.encodeRequest(BASE, 'm')).not.toHaveProperty(
      'system',
    );
  });

  it(`sends max_tokens ${ANTHROPIC_DEFAULT_MAX_TOKENS} when the client set no cap`, () => {
    const body = anthropicUpstream.encodeRequest(BASE, 'm');
    expect(body).toEqual({
      model: 'm',
      max_tokens: 4096,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
      stream: false,
    });
    expect(() => checkAnthropicBody(body)).not.toThrow();
  });

  it('raises the default cap above a large thinking budget', () => {
    // budget 8000 ≥ 4096, so max_tokens = 8000 + 4096 = 12096 > budget.
    const body = anthropicUpstream.encodeRequest(
      { ...BASE, thinkingBudgetTokens: 8000 },
      'm',
    );
    expect(body['max_tokens']).toBe(12096);
    expect(() => checkAnthropicBody(body)).not.toThrow();
  });

  it.each(['auto', 'any', 'none'] as const)('maps tool choice %s', (type) => {
    expect(
      anthropicUpstream.encodeRequest({ ...BASE, toolChoice: { type } }, 'm')[
        'tool_choice'
      ],
    ).toEqual({ type });
  });

  it('refuses thinking without a signature rather than drop it', () => {
    const request: CanonicalChatRequest = {
      ...BASE,
      messages: [
        ...BASE.messages,
        {
          role: 'assistant',
          content: [{ type: 'thinking', text: 'hmm', signature: null }],
        },
      ],
    };
    expect(() => anthropicUpstream.encodeRequest(request, 'm')).toThrow(
      UntranslatableError,
    );
  });

  it('leaves out empty text beside other blocks, as Anthropic refuses it', () => {
    const request: CanonicalChatRequest = {
      ...BASE,
      messages: [
        ...BASE.messages,
        {
          role: 'assistant',
          content: [
            { type: 'text', text: '' },
            { type: 'tool_use', id: 'call_1', name: 'f', input: {} },
          ],
        },
      ],
    };
    const body = anthropicUpstream.encodeRequest(request, 'm');
    expect(body['messages']).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
      {
        role: 'assistant',
        content: [{ type: 'tool_use', id: 'call_1', name: 'f', input: {} }],
      },
    ]);
    expect(() => checkAnthropicBody(body)).not.toThrow();
  });

  it('refuses a message with no content', () => {
    const request: CanonicalChatRequest = {
      ...BASE,
      messages: [{ role: 'user', content: [{ type: 'text', text: '' }] }],
    };
    expect(() => anthropicUpstream.encodeRequest(request, 'm')).toThrow(
      UntranslatableError,
    );
  });
});

describe.skipIf(!sharedDataPresent)('decodeResponse on recordings', () => {
  it('decodes a tool call answer', () => {
    const response = anthropicUpstream.decodeResponse(
      recordingJson('anthropic_messages_nonstream_tool-use.json'),
    );
    expect(response).toMatchObject({
      id: 'msg_01GCBaV8gyWAYgMVggRqZbuQ',
      model: 'claude-3-opus-20240229',
      stopReason: 'tool_use',
      stopSequence: null,
    });
    expect(response.content[1]).toEqual({
      type: 'tool_use',
      id: 'toolu_01LRmxn9vGM1d2DZSDBowdZ1',
      name: 'updateIssueList',
      input: {},
    });
  });
});

describe('decodeResponse', () => {
  const message = {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'claude-x',
    content: [{ type: 'text', text: 'ok' }],
    stop_reason: 'refusal',
    stop_sequence: null,
    usage: { input_tokens: 1, output_tokens: 1 },
  };

  it.each([
    ['end_turn', 'end_turn'],
    ['max_tokens', 'max_tokens'],
    ['stop_sequence', 'stop_sequence'],
    ['tool_use', 'tool_use'],
    ['refusal', 'content_filter'],
    ['pause_turn', 'end_turn'],
    ['something_new', null],
  ])('maps stop reason %s to %s', (anthropic, canonical) => {
    expect(
      anthropicUpstream.decodeResponse({ ...message, stop_reason: anthropic })
        .stopReason,
    ).toBe(canonical);
  });

  it('lists server-tool blocks, and decodeResponse refuses them', () => {
    const body = {
      ...message,
      content: [
        { type: 'server_tool_use', id: 's', name: 'web_search', input: {} },
        { type: 'text', text: 'found it' },
      ],
    };
    const { response, untranslatable } = decodeAnthropicMessage(body);
    expect(response.content).toEqual([{ type: 'text', text: 'found it' }]);
    expect(untranslatable).toHaveLength(1);
    expect(() => anthropicUpstream.decodeResponse(body)).toThrow(
      UntranslatableError,
    );
  });

  it.each<[string, unknown]>([
    ['a non-message', { type: 'error' }],
    ['no content list', { ...message, content: 'ok' }],
    ['no id', { ...message, id: 7 }],
    ['a malformed block', { ...message, content: [{ type: 'text' }] }],
  ])('refuses %s with UpstreamProtocolError', (_label, body) => {
    expect(() => anthropicUpstream.decodeResponse(body)).toThrow(
      UpstreamProtocolError,
    );
  });
});

describe('decodeError', () => {
  it('reads a 429 with its retry-after', () => {
    expect(
      anthropicUpstream.decodeError(
        429,
        { 'retry-after': '7' },
        {
          type: 'error',
          error: {
            type: 'rate_limit_error',
            message: 'Number of request tokens has exceeded your rate limit',
          },
        },
      ),
    ).toEqual({
      kind: 'rate_limit',
      status: 429,
      message: 'Number of request tokens has exceeded your rate limit',
      retryAfter: '7',
      upstreamCode: 'rate_limit_error',
    });
  });

  it('reads a 529 as overloaded', () => {
    expect(
      anthropicUpstream.decodeError(
        529,
        {},
        {
          type: 'error',
          error: { type: 'overloaded_error', message: 'Overloaded' },
        },
      ),
    ).toMatchObject({ kind: 'overloaded', status: 529, retryAfter: null });
  });

  it('reads a 400 about the prompt length as context_length', () => {
    expect(
      anthropicUpstream.decodeError(
        400,
        {},
        {
          type: 'error',
          error: {
            type: 'invalid_request_error',
            message: 'prompt is too long: 208310 tokens > 200000 maximum',
          },
        },
      ).kind,
    ).toBe('context_length');
  });

  it('reads any other 400 as invalid_request', () => {
    expect(
      anthropicUpstream.decodeError(
        400,
        {},
        {
          type: 'error',
          error: {
            type: 'invalid_request_error',
            message: 'max_tokens: Field required',
          },
        },
      ).kind,
    ).toBe('invalid_request');
  });

  it.each([
    ['authentication_error', 'authentication'],
    ['permission_error', 'permission'],
    ['not_found_error', 'not_found'],
    ['request_too_large', 'request_too_large'],
    ['api_error', 'server'],
    ['timeout_error', 'timeout'],
  ])('maps %s to %s', (type, kind) => {
    expect(
      anthropicUpstream.decodeError(
        500,
        {},
        {
          type: 'error',
          error: { type, message: 'x' },
        },
      ).kind,
    ).toBe(kind);
  });

  it('judges a body in no known shape by its status', () => {
    expect(
      anthropicUpstream.decodeError(
        503,
        { 'retry-after': ['3', '4'] },
        '<html>',
      ),
    ).toEqual({
      kind: 'overloaded',
      status: 503,
      message: 'Anthropic answered 503',
      retryAfter: '3',
      upstreamCode: null,
    });
  });
});

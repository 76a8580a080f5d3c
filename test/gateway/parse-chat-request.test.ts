/**
 * The output cap the worst case is reserved from, and the fields both
 * readers of a Chat Completions body (parseChatRequest when it passes
 * through, the decoder when it is translated) must read alike.
 */
import { describe, expect, it } from 'vitest';

import { ApiError } from '../../src/gateway/api-error.js';
import { parseChatRequest } from '../../src/gateway/chat/parse-chat-request.js';
import { InvalidRequestError } from '../../src/protocol/canonical.js';
import { decodeOpenAIChatRequest } from '../../src/protocol/openai/decode-chat-request.js';

const BASE = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] };

describe('parseChatRequest output cap', () => {
  it.each([
    [{}, undefined],
    [{ max_tokens: 10 }, 10],
    [{ max_completion_tokens: 30 }, 30],
    // Both given: either may be honoured upstream, so the larger bounds it.
    [{ max_tokens: 50, max_completion_tokens: 30 }, 50],
    [{ max_tokens: 10, max_completion_tokens: 30 }, 30],
  ])('%j → %s', (fields, expected) => {
    expect(parseChatRequest({ ...BASE, ...fields }).maxOutputTokens).toBe(
      expected,
    );
  });
});

describe('a Chat body read alike passed through and translated', () => {
  it.each<[string, Record<string, unknown>, string | null]>([
    ['user first', { user: 'u', safety_identifier: 's' }, 'u'],
    [
      'safety_identifier over metadata',
      { safety_identifier: 's', metadata: { user_id: 'm' } },
      's',
    ],
    ['metadata.user_id last', { metadata: { user_id: 'alice' } }, 'alice'],
    ['metadata without user_id', { metadata: { team: 'x' } }, null],
    ['nobody', {}, null],
  ])('end user: %s', (_label, fields, expected) => {
    const body = { ...BASE, ...fields };
    expect(parseChatRequest(body).user ?? null).toBe(expected);
    expect(decodeOpenAIChatRequest(body, null).endUser).toBe(expected);
  });

  it.each<[Record<string, unknown>, number | null, number | null]>([
    // [fields, bound passed through, cap sent when translated]
    [{}, null, null],
    [{ max_tokens: 15_000 }, 15_000, 15_000],
    [{ max_completion_tokens: 10, max_tokens: 15_000 }, 15_000, 10],
    [{ max_completion_tokens: 15_000, max_tokens: 10 }, 15_000, 15_000],
  ])('output caps %j: bound %s, sent %s', (fields, bound, sent) => {
    const body = { ...BASE, ...fields };
    expect(parseChatRequest(body).maxOutputTokens ?? null).toBe(bound);
    const cap = decodeOpenAIChatRequest(body, null).maxOutputTokens;
    expect(cap).toBe(sent);
    // What a translation sends never exceeds what passing through bounds.
    if (cap !== null) expect(cap).toBeLessThanOrEqual(bound as number);
  });

  it.each<[Record<string, unknown>, boolean, boolean]>([
    [{}, false, false],
    [{ stream: true }, true, false],
    [{ stream: true, stream_options: { include_usage: true } }, true, true],
    [{ stream: true, stream_options: { include_usage: null } }, true, false],
  ])('streaming %j', (fields, stream, includeUsage) => {
    const body = { ...BASE, ...fields };
    expect(parseChatRequest(body)).toMatchObject({ stream, includeUsage });
    expect(decodeOpenAIChatRequest(body, null)).toMatchObject({
      stream,
      includeUsage,
    });
  });

  it.each<[string, Record<string, unknown>, string, string]>([
    ['n "3"', { n: '3' }, 'invalid_type', 'n'],
    ['n 0', { n: 0 }, 'invalid_value', 'n'],
    ['n 129', { n: 129 }, 'invalid_value', 'n'],
    [
      'max_tokens 10,000,001',
      { max_tokens: 10_000_001 },
      'invalid_value',
      'max_tokens',
    ],
    ['user 257 long', { user: 'u'.repeat(257) }, 'invalid_value', 'user'],
    [
      'metadata.user_id 42',
      { metadata: { user_id: 42 } },
      'invalid_type',
      'metadata.user_id',
    ],
    [
      'metadata.user_id 257 long',
      { metadata: { user_id: 'm'.repeat(257) } },
      'invalid_value',
      'metadata.user_id',
    ],
    [
      'metadata a string',
      { user: 'u', metadata: 'x' },
      'invalid_type',
      'metadata',
    ],
    [
      'stream_options without stream',
      { stream_options: { include_usage: true } },
      'invalid_value',
      'stream_options',
    ],
  ])('both refuse %s', (_label, fields, code, param) => {
    const body = { ...BASE, ...fields };
    const refusal = { code, param };
    expect(() => parseChatRequest(body)).toThrow(ApiError);
    expect(catching(() => parseChatRequest(body))).toMatchObject(refusal);
    expect(() => decodeOpenAIChatRequest(body, null)).toThrow(
      InvalidRequestError,
    );
    expect(catching(() => decodeOpenAIChatRequest(body, null))).toMatchObject(
      refusal,
    );
  });

  it('words a wrong type as OpenAI does on both paths', () => {
    const body = { ...BASE, max_tokens: '10' };
    const message =
      "Invalid type for 'max_tokens': expected an integer, but got a " +
      'string instead.';
    expect(catching(() => parseChatRequest(body))).toMatchObject({ message });
    expect(catching(() => decodeOpenAIChatRequest(body, null))).toMatchObject({
      message,
    });
  });
});

function catching(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a refusal');
}

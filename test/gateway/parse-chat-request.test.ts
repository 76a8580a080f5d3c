/**
 * The output cap the worst case is reserved from.
 */
import { describe, expect, it } from 'vitest';

import { parseChatRequest } from '../../src/gateway/chat/parse-chat-request.js';

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

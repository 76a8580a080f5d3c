/**
 * A field the gateway does not know is refused when the request must be
 * translated (never dropped: a typo such as `max_token` would silently
 * lose the client's cap), and passed on to an upstream of the client's
 * own API, which judges it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';

import {
  startProviderGateway,
  type ProviderGateway,
} from '../helpers/provider-gateway.js';

let g: ProviderGateway;
beforeAll(async () => {
  g = await startProviderGateway();
});
afterAll(async () => {
  await g.close();
});

function post(path: string, body: unknown) {
  return fetch(`${g.url}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${g.key}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
}

const HI = [{ role: 'user', content: 'Hi' }];

it.each([
  [
    '/v1/chat/completions',
    'nova-lite',
    { messages: HI, frobnicate: 1 },
    'frobnicate',
  ],
  [
    '/v1/chat/completions',
    'claude-sonnet-4-5',
    { messages: HI, max_token: 5 },
    'max_token',
  ],
  ['/v1/responses', 'claude-sonnet-4-5', { input: 'Hi', frob: true }, 'frob'],
])('%s to %s refuses an unknown field', async (path, model, body, field) => {
  const before = g.anthropic.requests.length + g.bedrock.requests.length;
  const response = await post(path, { model, ...body });
  expect(response.status).toBe(400);
  const error = (
    (await response.json()) as {
      error: { code: string; param: string };
    }
  ).error;
  expect(error).toMatchObject({ code: 'untranslatable', param: field });
  expect(g.anthropic.requests.length + g.bedrock.requests.length).toBe(before);
});

it('passes an unknown field on to an upstream of the same API', async () => {
  const response = await post('/v1/chat/completions', {
    model: 'gpt-4o',
    messages: HI,
    frobnicate: 1,
  });
  expect(response.status).toBe(200);
  const sent = g.openai.requests.at(-1)?.body as Record<string, unknown>;
  expect(sent['frobnicate']).toBe(1);
});

it('names the stable code in a header, whatever the API', async () => {
  const anthropic = await fetch(`${g.url}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': g.key, 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'nova-lite',
      max_tokens: 5,
      top_k: 3,
      messages: HI,
    }),
  });
  expect(anthropic.status).toBe(400);
  expect(anthropic.headers.get('x-tollgate-error-code')).toBe('untranslatable');
  const bedrock = await fetch(`${g.url}/model/no-such-model/converse`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${g.key}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({
      messages: [{ role: 'user', content: [{ text: 'Hi' }] }],
    }),
  });
  expect(bedrock.status).toBe(404);
  expect(bedrock.headers.get('x-tollgate-error-code')).toBe('model_not_found');
});

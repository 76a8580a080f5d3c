/**
 * The Azure OpenAI client against the fake: the URL forms of dated API
 * versions and of v1, the `api-key` header or an Entra bearer token, the
 * request id from `apim-request-id`, and Azure's streamed answer (content
 * filter results included) decoded to the usage the fake was given.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startOpenAIFake,
  type OpenAIFake,
} from '../../../src/fakes/openai/openai-fake-server.js';
import { openAIChatUpstream } from '../../../src/protocol/openai/openai-chat-upstream.js';
import {
  AzureOpenAIClient,
  type AzureAuth,
} from '../../../src/providers/azure/azure-openai-client.js';
import type { OpenAIWireApi } from '../../../src/providers/openai/openai-client.js';
import { normalizeOpenAIEmbeddingsUsage } from '../../../src/providers/openai/normalize-embeddings-usage.js';
import { sharedDataPresent, sharedFile } from '../../helpers/shared-data.js';
import { textOf, usage } from './openai-test-helpers.js';
import { dispatcher, readAll, streamedEvents } from './pipeline.js';

let fake: OpenAIFake;
beforeAll(async () => {
  fake = await startOpenAIFake();
});
afterAll(async () => {
  await fake.close();
  await dispatcher.close();
});

function azure(
  apiVersion: string,
  auth: AzureAuth = { type: 'api-key', key: 'azure-key' },
  api: OpenAIWireApi = 'openai-chat',
) {
  return new AzureOpenAIClient({
    api,
    endpoint: `${fake.azureUrl}/`,
    apiVersion,
    auth,
    headersTimeoutMs: 5_000,
    bodyTimeoutMs: 5_000,
    dispatcher,
  });
}

const CHAT = {
  model: 'gpt-4o-prod',
  messages: [{ role: 'user', content: 'Hello Azure' }],
};

describe('AzureOpenAIClient', () => {
  it('calls the deployment path with api-version and the api-key header', async () => {
    const response = await azure('2024-10-21').sendChat({
      body: CHAT,
      upstreamModel: 'gpt-4o-prod',
      stream: false,
      signal: AbortSignal.timeout(5_000),
    });
    expect(response.status).toBe(200);
    const request = fake.requests.at(-1);
    expect(request?.path).toBe(
      '/openai/deployments/gpt-4o-prod/chat/completions',
    );
    expect(request?.query).toEqual({ 'api-version': '2024-10-21' });
    expect(request?.headers['api-key']).toBe('azure-key');
    expect(request?.headers.authorization).toBeUndefined();
    expect(response.upstreamRequestId).toMatch(/^00000000-0000-4000-8000-/);

    // "Hello Azure" is 11 bytes: ceil(11 / 4) = 3 input tokens; 16 out.
    const body = JSON.parse((await readAll(response)).toString()) as unknown;
    const decoded = openAIChatUpstream.decodeResponse(body);
    expect(decoded.usage).toEqual(usage({ inputTokens: 3, outputTokens: 16 }));
  });

  it('uses the v1 path, with no api-version, and an Entra token', async () => {
    const response = await azure('v1', {
      type: 'entra',
      token: () => Promise.resolve('entra-token'),
    }).sendChat({
      body: CHAT,
      upstreamModel: 'gpt-4o-prod',
      stream: false,
      signal: AbortSignal.timeout(5_000),
    });
    expect(response.status).toBe(200);
    await readAll(response);
    const request = fake.requests.at(-1);
    expect(request?.path).toBe('/openai/v1/chat/completions');
    expect(request?.query).toEqual({});
    expect(request?.headers.authorization).toBe('Bearer entra-token');
  });

  it('sends Responses calls to /openai/responses with the deployment as model', async () => {
    const response = await azure(
      '2025-04-01-preview',
      undefined,
      'openai-responses',
    ).sendChat({
      body: { model: 'gpt-5-prod', input: 'hi' },
      upstreamModel: 'gpt-5-prod',
      stream: false,
      signal: AbortSignal.timeout(5_000),
    });
    expect(response.status).toBe(200);
    await readAll(response);
    expect(fake.requests.at(-1)?.path).toBe('/openai/responses');
  });

  it('calls embeddings on the deployment path', async () => {
    const response = await azure('2024-10-21').embeddings(
      { model: 'embed-prod', input: ['abcdefgh', 'abcd'] },
      AbortSignal.timeout(5_000),
    );
    const body = JSON.parse((await readAll(response)).toString()) as {
      data: unknown[];
      usage: unknown;
    };
    expect(fake.requests.at(-1)?.path).toBe(
      '/openai/deployments/embed-prod/embeddings',
    );
    expect(body.data).toHaveLength(2);
    // 8 bytes → 2 tokens, 4 bytes → 1 token: 3 input tokens.
    expect(normalizeOpenAIEmbeddingsUsage(body.usage)).toEqual(
      usage({ inputTokens: 3 }),
    );
  });

  it('decodes a synthesised Azure stream with its filter results', async () => {
    fake.enqueue({
      kind: 'synthesize',
      usage: { input: 15, output: 78, reasoning: 64 },
      text: 'Capital of Denmark.',
    });
    const response = await azure('2024-10-21').sendChat({
      body: openAIChatUpstream.encodeRequest(
        {
          model: 'alias',
          system: [],
          messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
          tools: [],
          toolChoice: null,
          maxOutputTokens: null,
          temperature: null,
          topP: null,
          stopSequences: [],
          thinkingBudgetTokens: null,
          stream: true,
          includeUsage: false,
          endUser: null,
        },
        'gpt-5-nano',
      ),
      upstreamModel: 'gpt-5-nano',
      stream: true,
      signal: AbortSignal.timeout(5_000),
    });
    const events = await streamedEvents(response, openAIChatUpstream);
    expect(textOf(events)).toBe('Capital of Denmark.');
    expect(events.at(-1)).toMatchObject({
      usage: usage({ inputTokens: 15, outputTokens: 78, reasoningTokens: 64 }),
      final: true,
    });
  });

  it.skipIf(!sharedDataPresent)(
    'serves the Azure recording through the client',
    async () => {
      fake.enqueue({
        kind: 'recording',
        file: sharedFile(
          'wire/azure-openai_chat_stream_reasoning-tokens.chunks.jsonl',
        ),
      });
      const response = await azure('2024-10-21').sendChat({
        body: {
          ...CHAT,
          stream: true,
          stream_options: { include_usage: true },
        },
        upstreamModel: 'gpt-4o-prod',
        stream: true,
        signal: AbortSignal.timeout(5_000),
      });
      const events = await streamedEvents(response, openAIChatUpstream);
      // Last chunk: prompt 15, completion 78 of which reasoning 64.
      expect(events.at(-1)).toMatchObject({
        usage: usage({
          inputTokens: 15,
          outputTokens: 78,
          reasoningTokens: 64,
        }),
      });
    },
  );

  it('is refused by the fake without api-version on a deployment path', async () => {
    const response = await fetch(
      `${fake.azureUrl}/openai/deployments/d/chat/completions`,
      {
        method: 'POST',
        headers: { 'api-key': 'k', 'content-type': 'application/json' },
        body: JSON.stringify(CHAT),
      },
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      error: { param: 'api-version', code: 'missing_required_parameter' },
    });
  });

  it('is refused by the fake without a key, in Azure words', async () => {
    const response = await fetch(
      `${fake.azureUrl}/openai/deployments/d/chat/completions?api-version=2024-10-21`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(CHAT),
      },
    );
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({
      error: { code: '401', message: expect.stringMatching(/^Access denied/) },
    });
  });
});
